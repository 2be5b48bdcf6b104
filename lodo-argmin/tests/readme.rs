//! The workspace README's snippets for the adapters are the first examples of the crate docs of
//! `lodo-argmin` and `lodo-candle`, which rustdoc compiles and runs (`cargo test --doc`): this
//! test keeps them identical. (It lives here, in the light crate, so it runs even when the
//! candle crate is left out of a build.)

/// The first code block of a crate's `//!` docs.
fn first_doc_example(lib: &str) -> String {
    let doc: Vec<&str> = lib
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| l.strip_prefix("//! ").unwrap_or(&l[3..]))
        .collect();
    let start = doc.iter().position(|l| l.starts_with("```")).unwrap();
    let len = doc[start + 1..]
        .iter()
        .position(|l| l.starts_with("```"))
        .unwrap();
    doc[start + 1..start + 1 + len].join("\n")
}

#[test]
fn readme_snippets_are_the_crate_doctests() {
    let readme = include_str!("../../README.md");
    for (name, lib) in [
        ("lodo-argmin", include_str!("../src/lib.rs")),
        ("lodo-candle", include_str!("../../lodo-candle/src/lib.rs")),
    ] {
        let snippet = first_doc_example(lib);
        assert!(
            readme.contains(&snippet),
            "README.md must contain {name}'s doc example verbatim:\n{snippet}"
        );
    }
}
