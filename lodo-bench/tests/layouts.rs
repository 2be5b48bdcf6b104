//! LODO's layouts in the harness: the `--permutations` and `--state` lists, the rows they add
//! (built with the layout, at LODO's hyperparameters), and the table's summaries and verdict.

use lodo_bench::baselines::{
    BuiltLodo, LodoParams, LodoVariant, Optimizer, StatePolicy, build_lodo,
};
use lodo_bench::experiment::layouts::{
    DEFAULT_TILE, FamilyError, FamilyList, Layout, STUDY_LAYOUTS, StateList, layout_rows,
    layout_verdict, summarize,
};
use lodo_core::{MetaOptimizer, PermutationFamily, Precision};

/// The paper's permutations with the full state, or the given family with it.
fn fam(family: PermutationFamily) -> Layout {
    Layout::new(family, StatePolicy::Full)
}

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
        parse(" Tiled:8 ,SHUFFLE,tiled:12"),
        Ok(vec![
            TiledShuffle { tile: 8 },
            Shuffle,
            TiledShuffle { tile: 12 }
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
    let cases: [(&str, FamilyError); 10] = [
        ("tiled:0", FamilyError::ZeroTile),
        (
            "tiled:6",
            FamilyError::TileNotMultipleOfBlock {
                tile: 6,
                block_size: 4,
            },
        ),
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
fn state_lists_parse_in_order_and_refuse_bad_items() {
    let l: StateList = " Q8,full,bf16".parse().unwrap();
    assert_eq!(
        l.states(),
        [StatePolicy::Q8, StatePolicy::Full, StatePolicy::Bf16]
    );
    assert_eq!(l.to_string(), "q8,full,bf16");
    assert_eq!(l.to_string().parse::<StateList>(), Ok(l));
    assert_eq!(StateList::default().states(), [StatePolicy::Full]);
    for (bad, says) in [
        ("f16", "unknown state policy \"f16\""),
        ("", "empty"),
        ("full,,q8", "empty"),
        ("q8,bf16,q8", "q8 is listed twice"),
    ] {
        let e = bad.parse::<StateList>().unwrap_err();
        assert!(
            e.contains(says) && (says != "empty" || e.contains("bf16")),
            "{bad:?}: {e}"
        );
    }
    // The policies are the precisions lodo-core is configured with.
    assert_eq!(
        StatePolicy::Q8.precisions(),
        (Precision::Q8, Precision::Bf16)
    );
    assert_eq!(
        StatePolicy::Bf16.precisions(),
        (Precision::Bf16, Precision::Bf16)
    );
    assert_eq!(
        StatePolicy::Full.precisions(),
        (Precision::Full, Precision::Full)
    );
}

#[test]
fn rows_are_the_layouts_of_both_lists_but_the_papers_with_their_labels() {
    let l: FamilyList = "random,shuffle,tiled,tiled:8".parse().unwrap();
    let labels = |f: &FamilyList, s: &StateList| -> Vec<String> {
        layout_rows(f, s).into_iter().map(|r| r.label).collect()
    };
    assert_eq!(
        labels(&l, &StateList::default()),
        ["LODO-Shuffle", "LODO-Tiled64", "LODO-Tiled8"]
    );
    assert!(
        layout_rows(&FamilyList::default(), &StateList::default()).is_empty(),
        "random with the full state is LODO itself"
    );
    let both: FamilyList = "random,shuffle".parse().unwrap();
    let states: StateList = "full,q8".parse().unwrap();
    assert_eq!(
        labels(&both, &states),
        ["LODO-q8", "LODO-Shuffle", "LODO-Shuffle-q8"]
    );
    // Without `full`, the full rows are not run (LODO itself still is).
    let q8: StateList = "bf16".parse().unwrap();
    assert_eq!(labels(&both, &q8), ["LODO-bf16", "LODO-Shuffle-bf16"]);
    assert_eq!(Layout::PAPER.label(), "LODO");
    let rows = layout_rows(&both, &states);
    assert_eq!(
        rows[2].variant,
        LodoVariant::block_with(PermutationFamily::Shuffle, StatePolicy::Q8)
    );
}

#[test]
fn a_state_row_builds_lodo_with_that_state_at_lodos_hyperparameters() {
    let lodo = LodoParams {
        alpha0: 0.27,
        meta_lr: 9.6e-4,
        beta: 0.195,
        variant: LodoVariant::BLOCK,
    };
    let n = 50;
    for state in StatePolicy::ALL {
        let layout = Layout::new(PermutationFamily::Random, state);
        let Optimizer::Lodo(p) = layout.row().optimizer(&lodo) else {
            panic!("a layout row is LODO");
        };
        assert_eq!((p.alpha0, p.meta_lr, p.beta), (0.27, 9.6e-4, 0.195));
        let Ok(BuiltLodo::Block(built)) = build_lodo::<f64>(&p, n, 7) else {
            panic!("{state:?}: the block network");
        };
        let (moments, activations) = state.precisions();
        assert_eq!(built.meta().precision(), moments);
        assert_eq!(built.preconditioner().activations(), activations);
        assert_eq!(built.preconditioner().alpha0().to_bits(), 0.27f64.to_bits());
    }
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
    for family in STUDY_LAYOUTS
        .into_iter()
        .filter(|l| l.state == StatePolicy::Full)
        .map(|l| l.family)
        .chain([PermutationFamily::TiledShuffle { tile: 12 }])
    {
        let Optimizer::Lodo(p) = fam(family).row().optimizer(&lodo) else {
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
        let perms = g.permutations().expect("memory");
        for perm in &perms {
            assert!(family.contains(perm, k), "{family:?}");
        }
        match family {
            PermutationFamily::Random => random_perms = Some(perms),
            _ => {
                let random = random_perms.as_ref().expect("Random comes first");
                assert_ne!(&perms, random, "{family:?}");
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
        Layout::PAPER,
        80,
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
    let random = summarize(Layout::PAPER, 80, &random_losses, &f, &s, None);
    // The same values shifted by 0.01 (0.1 %): far inside the noise.
    let near: Vec<f64> = random_losses.iter().map(|v| v + 0.01).collect();
    let near = summarize(
        Layout::new(PermutationFamily::Random, StatePolicy::Q8),
        80,
        &near,
        &f,
        &s,
        Some(&random.losses),
    );
    let v = layout_verdict(&near, &random);
    assert!(
        v.starts_with("q8: no difference detected (+0.10 %, p = 0.88"),
        "{v}"
    );
    // Shifted by 5 % of the mean: far outside it.
    let far: Vec<f64> = random_losses.iter().map(|v| v + 0.5).collect();
    let far = summarize(
        fam(PermutationFamily::TiledShuffle { tile: 64 }),
        80,
        &far,
        &f,
        &s,
        Some(&random.losses),
    );
    let v = layout_verdict(&far, &random);
    assert!(
        v.starts_with("Tiled64 is 5.00 % worse than Random (p = "),
        "{v}"
    );
    // Better, and an untestable row.
    let low: Vec<f64> = random_losses.iter().map(|v| v - 0.5).collect();
    let low = summarize(
        Layout::new(PermutationFamily::Shuffle, StatePolicy::Bf16),
        80,
        &low,
        &f,
        &s,
        Some(&random.losses),
    );
    let v = layout_verdict(&low, &random);
    assert!(v.starts_with("Shuffle-bf16 is 5.00 % better"), "{v}");
    let one = summarize(
        fam(PermutationFamily::Shuffle),
        80,
        &[10.0, f64::NAN],
        &[false, true],
        &[1.0, 1.0],
        Some(&random.losses),
    );
    let v = layout_verdict(&one, &random);
    assert!(v.contains("no test") && v.contains("at least 2"), "{v}");
}

#[test]
fn the_study_runs_every_layout_and_reuses_a_given_paper_group() {
    use lodo_bench::experiment::TaskSpec;
    use lodo_bench::experiment::layouts::{LayoutCase, run_study};
    use lodo_bench::tasks::BowlOptions;

    let dir = std::env::temp_dir().join(format!("lodo-bench-layouts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let lodo = LodoParams {
        alpha0: 0.1,
        meta_lr: 1e-3,
        beta: 0.5,
        variant: LodoVariant::BLOCK,
    };
    let bowl = TaskSpec::Bowl(BowlOptions {
        dim: 40,
        ..BowlOptions::default()
    });
    let case = |key: &str, spec: TaskSpec, hessian_points| LayoutCase {
        key: key.into(),
        title: key.into(),
        spec,
        lodo,
        source: "test".into(),
        runs: 3,
        steps: 300,
        hessian_points,
        random: None,
    };
    let first = run_study(
        &[
            case("bowl", bowl.clone(), 3),
            case("rosenbrock", TaskSpec::Rosenbrock, 0),
        ],
        5,
        &dir,
    )
    .unwrap();
    assert_eq!(first.cases.len(), 2);
    for c in &first.cases {
        let layouts: Vec<Layout> = c.layouts.iter().map(|f| f.layout).collect();
        assert_eq!(layouts, STUDY_LAYOUTS);
        assert!(c.layouts.iter().all(|f| f.losses.len() == 3));
        assert!(c.layouts[0].test.is_none());
        assert!(c.layouts[1..].iter().all(|f| f.test.is_some()));
    }
    // h = 80 on the bowl: every layout's runs differ from the paper's (the compact states
    // round the moments and activations).
    let bowl_runs = &first.cases[0].layouts;
    for f in &bowl_runs[1..] {
        assert_ne!(bowl_runs[0].losses, f.losses, "{:?}", f.layout);
    }
    // The Hessian error is measured on the bowl with 3 points, not on Rosenbrock.
    assert!(
        bowl_runs
            .iter()
            .all(|f| f.hessian.is_some_and(|h| h.is_finite() && h > 0.0))
    );
    assert!(first.cases[1].layouts.iter().all(|f| f.hessian.is_none()));
    assert!(dir.join("bowl/hessian_error.svg").is_file());
    assert!(!dir.join("rosenbrock/hessian_error.svg").exists());
    // Rosenbrock (n = 2): random keeps h = 2n rounded to k = 4; the structured families round
    // up to k² = 16, which the table prints per layout.
    let rosen = &first.cases[1];
    let widths: Vec<usize> = rosen.layouts.iter().map(|f| f.hidden).collect();
    assert_eq!(widths, [4, 16, 16, 4, 4, 4]);
    let md = first.markdown();
    assert!(md.contains("| Shuffle | full | 16 |"), "{md}");
    assert!(md.contains("| Random | q8 | 4 |"), "{md}");
    assert!(md.contains("| Random | q8-theta32 | 4 |"), "{md}");
    assert!(md.contains(&first.verdict()));
    let csv = std::fs::read_to_string(dir.join("layouts.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 12, "{csv}");
    assert!(
        csv.lines().next().unwrap().ends_with(",hessian_error"),
        "{csv}"
    );
    assert!(dir.join("bowl/curves/LODO-Shuffle/run2.csv").is_file());
    assert!(dir.join("bowl/curves/LODO-q8/run2.csv").is_file());
    assert!(dir.join("bowl/curves/LODO-q8-theta32/run2.csv").is_file());

    // A paper's group given with the case is used as it is, not run again.
    let mut given = case("bowl", bowl, 3);
    let mut group = lodo_bench::experiment::protocol::Group {
        label: "LODO".into(),
        optimizer: Optimizer::Lodo(lodo),
        runs: Vec::new(),
    };
    for loss in [11.0, 12.0, 13.0] {
        let mut r = lodo_bench::experiment::RunRecord::failed(String::new());
        (r.final_loss, r.diverged, r.note) = (loss, false, None);
        group.runs.push(r);
    }
    given.random = Some(group);
    let second = run_study(&[given], 5, &dir.join("given")).unwrap();
    let c = &second.cases[0];
    assert_eq!(c.layouts[0].losses, [11.0, 12.0, 13.0]);
    assert_eq!(c.layouts[1].losses, first.cases[0].layouts[1].losses);
    assert_eq!(c.layouts[4].losses, first.cases[0].layouts[4].losses);
    assert!(!dir.join("given/bowl/curves/LODO").exists());
    assert!(
        second
            .markdown()
            .contains("The paper's layout on bowl is the main table's LODO")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
