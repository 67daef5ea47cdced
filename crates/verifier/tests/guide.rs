//! The guide's examples are the code that compiles: docs/verifier.md's "Protecting an axum
//! service" shows `examples/axum_service.rs` verbatim, so the page cannot drift from what
//! `cargo test` builds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first fenced Rust block after `marker` in `text`.
fn rust_block_after(text: &str, marker: &str) -> String {
    let from = text.find(marker).unwrap_or_else(|| panic!("no {marker:?}"));
    let rest = &text[from..];
    let open = rest
        .find("```rust\n")
        .expect("a ```rust block after the marker")
        + "```rust\n".len();
    let close = rest[open..]
        .find("```\n")
        .expect("the block's closing fence");
    rest[open..open + close].to_owned()
}

#[test]
fn the_guides_axum_service_is_the_compiled_example_verbatim() {
    let guide = read("../../docs/verifier.md");
    let example = read("examples/axum_service.rs");
    // The example's module docs (its first paragraph) say where it comes from; the rest is
    // what the page shows.
    let (header, code) = example.split_once("\n\n").expect("a header paragraph");
    assert!(
        header.lines().all(|line| line.starts_with("//!")),
        "{header}"
    );
    let shown = rust_block_after(&guide, "and a `main.rs` like this one");
    assert_eq!(
        shown, code,
        "docs/verifier.md and examples/axum_service.rs differ"
    );
}

#[test]
fn every_crate_the_guides_example_uses_is_in_its_dependencies() {
    let guide = read("../../docs/verifier.md");
    let example = read("examples/axum_service.rs");
    let from = guide
        .find("## Protecting an axum service")
        .expect("the section");
    let toml = &guide[from..];
    let open = toml.find("```toml\n").expect("a toml block");
    let close = toml[open..].find("\n```").expect("its end");
    let dependencies = &toml[open..open + close];
    for line in example.lines().filter(|l| l.starts_with("use ")) {
        let krate = line["use ".len()..]
            .split("::")
            .next()
            .unwrap()
            .replace('_', "-");
        assert!(
            dependencies.contains(&format!("\n{krate} =")),
            "{krate} (from {line:?}) is not in the guide's dependencies:{dependencies}"
        );
    }
}

#[test]
fn the_guides_first_example_puts_the_layer_around_the_whole_router() {
    // The layout that meets the hot-path target (docs/benchmarks.md) is the one people copy.
    let code = read("examples/axum_service.rs");
    assert!(code.contains(".public_paths(["), "{code}");
    assert!(code.contains("into_make_service(service)"), "{code}");
    assert!(!code.contains(".route_layer(VerifierLayer"), "{code}");
}
