//! LODO's permutation families in the harness: the `--permutations` list, the rows it adds
//! (built with the family, at LODO's hyperparameters), and the table's summaries and verdict.

use lodo_bench::baselines::{BuiltLodo, LodoParams, LodoVariant, Optimizer, build_lodo};
use lodo_bench::experiment::families::{
    DEFAULT_TILE, FamilyError, FamilyList, STUDY_FAMILIES, family_label, family_row,
    family_verdict, summarize,
};
use lodo_core::{MetaOptimizer, PermutationFamily};

fn parse(s: &str) -> Result<Vec<PermutationFamily>, FamilyError> {
    s.parse::<FamilyList>().map(|l| l.families().to_vec())
}

#[test]
fn good_lists_parse_in_order() {
    use PermutationFamily::{Random, Shuffle, TiledShuffle};
    assert_eq!(parse("random"), Ok(vec![Random]));
    assert_eq!(FamilyList::default().families(), &[Random]);
    assert_eq!(
        parse("random,shuffle,tiled"),
        Ok(vec![Random, Shuffle, TiledShuffle { tile: DEFAULT_TILE }])
    );
    // Case-insensitive, spaces around items, several tiles, random not required.
    assert_eq!(
        parse(" Tiled:8 ,SHUFFLE,tiled:1"),
        Ok(vec![
            TiledShuffle { tile: 8 },
            Shuffle,
            TiledShuffle { tile: 1 }
        ])
    );
    // Display writes what parses back to the same list.
    let l: FamilyList = "shuffle,random,tiled".parse().unwrap();
    assert_eq!(
        l.to_string(),
        format!("shuffle,random,tiled:{DEFAULT_TILE}")
    );
    assert_eq!(l.to_string().parse::<FamilyList>(), Ok(l));
}

#[test]
fn bad_lists_are_typed_errors_with_clear_messages() {
    let cases: [(&str, FamilyError); 9] = [
        ("tiled:0", FamilyError::ZeroTile),
        ("tiled:x", FamilyError::BadTile("tiled:x".into())),
        ("tiled:", FamilyError::BadTile("tiled:".into())),
        ("tiled:-3", FamilyError::BadTile("tiled:-3".into())),
        ("butterfly", FamilyError::Unknown("butterfly".into())),
        ("shuffle:4", FamilyError::Unknown("shuffle:4".into())),
        ("", FamilyError::Empty),
        ("random,,shuffle", FamilyError::Empty),
        (
            "random,shuffle,random",
            FamilyError::Duplicate("Random".into()),
        ),
    ];
    for (s, e) in cases {
        assert_eq!(parse(s), Err(e), "{s:?}");
    }
    // `tiled` is `tiled:64`: the same family twice.
    assert_eq!(
        parse(&format!("tiled,tiled:{DEFAULT_TILE}")),
        Err(FamilyError::Duplicate(format!("Tiled{DEFAULT_TILE}")))
    );
    let msg = FamilyError::Unknown("butterfly".into()).to_string();
    assert!(
        msg.contains("butterfly") && msg.contains("shuffle") && msg.contains("tiled:T"),
        "{msg}"
    );
    assert!(FamilyError::ZeroTile.to_string().contains("at least 1"));
}

#[test]
fn rows_are_the_structured_families_with_their_labels() {
    let l: FamilyList = "random,shuffle,tiled,tiled:8".parse().unwrap();
    let labels: Vec<String> = l.rows().into_iter().map(|r| r.label).collect();
    assert_eq!(labels, ["LODO-Shuffle", "LODO-Tiled64", "LODO-Tiled8"]);
    assert!(
        FamilyList::default().rows().is_empty(),
        "random is LODO itself"
    );
    assert_eq!(family_label(PermutationFamily::Random), "LODO");
}

#[test]
fn a_family_row_builds_lodo_with_that_family_at_lodos_hyperparameters() {
    let lodo = LodoParams {
        alpha0: 0.27,
        meta_lr: 9.6e-4,
        beta: 0.195,
        variant: LodoVariant::BLOCK,
    };
    let (n, seed) = (50, 7);
    let mut random_perms = None;
    for family in STUDY_FAMILIES
        .into_iter()
        .chain([PermutationFamily::TiledShuffle { tile: 5 }])
    {
        let Optimizer::Lodo(p) = family_row(family).optimizer(&lodo) else {
            panic!("a family row is LODO");
        };
        assert_eq!((p.alpha0, p.meta_lr, p.beta), (0.27, 9.6e-4, 0.195));
        let Ok(BuiltLodo::Block(built)) = build_lodo::<f64>(&p, n, seed) else {
            panic!("{family:?}: the block network");
        };
        let g = built.preconditioner();
        assert_eq!(g.permutation_family(), family);
        assert_eq!(g.alpha0().to_bits(), 0.27f64.to_bits());
        assert_eq!(built.meta().learning_rate().to_bits(), 9.6e-4f64.to_bits());
        assert_eq!(g.layers(), 16);
        // The permutations are the family's, not only the label.
        let k = g.block_size();
        for perm in g.permutations() {
            assert!(family.contains(perm, k), "{family:?}");
        }
        match family {
            PermutationFamily::Random => random_perms = Some(g.permutations().to_vec()),
            _ => {
                let random = random_perms.as_ref().expect("Random comes first");
                assert_ne!(g.permutations(), random.as_slice(), "{family:?}");
                assert!(
                    !PermutationFamily::Shuffle.contains(&random[0], k),
                    "Random's first layer is not the shuffle (h = 100)"
                );
            }
        }
    }
}

#[test]
fn summaries_use_the_sample_std_and_exclude_diverged_runs() {
    let r = summarize(
        PermutationFamily::Random,
        &[1.0, 2.0, 3.0, f64::INFINITY],
        &[false, false, false, true],
        &[10.0, 10.0, 10.0, 0.0],
        None,
    );
    assert_eq!(r.losses, [1.0, 2.0, 3.0]);
    assert_eq!((r.runs, r.mean, r.std), (4, 2.0, 1.0));
    assert!(r.test.is_none());
}

#[test]
fn the_verdict_follows_the_test() {
    let random_losses = [10.0, 10.2, 9.9, 10.1, 9.8, 10.0, 10.1, 9.9];
    let f = [false; 8];
    let s = [1.0; 8];
    let random = summarize(PermutationFamily::Random, &random_losses, &f, &s, None);
    // The same values shifted by 0.01 (0.1 %): far inside the noise.
    let near: Vec<f64> = random_losses.iter().map(|v| v + 0.01).collect();
    let near = summarize(
        PermutationFamily::Shuffle,
        &near,
        &f,
        &s,
        Some(&random.losses),
    );
    let v = family_verdict(&near, &random);
    assert!(
        v.starts_with("Shuffle: no difference detected (+0.1 %, p = 0.8"),
        "{v}"
    );
    // Shifted by 5 % of the mean: far outside it.
    let far: Vec<f64> = random_losses.iter().map(|v| v + 0.5).collect();
    let far = summarize(
        PermutationFamily::TiledShuffle { tile: 64 },
        &far,
        &f,
        &s,
        Some(&random.losses),
    );
    let v = family_verdict(&far, &random);
    assert!(
        v.starts_with("Tiled64 is 5.0 % worse than Random (p = "),
        "{v}"
    );
    // Better, and an untestable row.
    let low: Vec<f64> = random_losses.iter().map(|v| v - 0.5).collect();
    let low = summarize(
        PermutationFamily::Shuffle,
        &low,
        &f,
        &s,
        Some(&random.losses),
    );
    assert!(family_verdict(&low, &random).contains("5.0 % better"));
    let one = summarize(
        PermutationFamily::Shuffle,
        &[10.0, f64::NAN],
        &[false, true],
        &[1.0, 1.0],
        Some(&random.losses),
    );
    let v = family_verdict(&one, &random);
    assert!(v.contains("no test") && v.contains("at least 2"), "{v}");
}
