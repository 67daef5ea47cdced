//! Cost of the common-password check (`domain::common_passwords`):
//!
//! * `load`: the one-time decompression of the embedded list at the first check;
//! * `contains/*`: one lookup (a binary search over the sorted lines) for a listed entry, a
//!   strong password and a long one, each already lower-cased as the policy passes it;
//! * `check_new_password`: the whole policy check of a strong password (length, lower-casing,
//!   the list, the username rule).
//!
//! Before the benchmarks it prints the list's size in memory and the process's resident-set
//! growth (`VmRSS`) from loading it. Run with `cargo bench -p auth-center --bench
//! common_passwords`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)] // a benchmark: fail loudly

use std::hint::black_box;

use auth_center::domain::common_passwords::CommonPasswords;
use auth_center::domain::credentials::check_new_password;
use criterion::{Criterion, criterion_group, criterion_main};
use secrecy::SecretString;

fn resident_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn bench(c: &mut Criterion) {
    let before = resident_kib();
    let list = CommonPasswords::get().unwrap();
    let after = resident_kib();
    println!(
        "common-password list: {} entries, {} bytes on the heap; resident set {:?} KiB -> {:?} KiB",
        list.len(),
        list.heap_bytes(),
        before,
        after
    );

    c.bench_function("common_passwords/load", |b| {
        b.iter(|| black_box(CommonPasswords::load().unwrap()))
    });
    for (name, password) in [
        ("listed", "123456789012345"),
        ("strong", "violet kettle drums at noon"),
        ("long", &"q".repeat(128)),
    ] {
        c.bench_function(&format!("common_passwords/contains/{name}"), |b| {
            b.iter(|| black_box(list.contains(black_box(password))))
        });
    }
    let strong = SecretString::from("Violet kettle drums at noon".to_string());
    c.bench_function("common_passwords/check_new_password", |b| {
        b.iter(|| check_new_password(black_box(&strong), "alice").unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
