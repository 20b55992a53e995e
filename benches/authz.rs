//! authorize_user at 10, 1,000 and 100,000 records.
//!
//! Every record holds one statement for its own user (`user-{i}`) on
//! `/organizations/org-{i % 97}/documents/doc-{i}/*`; one group (`staff`) also holds a
//! statement in every tenth record, so one subject key carries a large resource trie.
//! The median at 100,000 should stay within 3x the median at 10: statements are indexed
//! by subject, then by resource segments, never scanned.

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use portcullis::{Authorizer, Record, RecordSet, Statement, Subject};

fn records(n: usize) -> RecordSet {
    let mut b = RecordSet::builder()
        .role("reader", ["documents:read", "documents:list"])
        .role("editor", ["documents:*"])
        .group("staff", (0..n).step_by(3).map(|i| format!("user-{i}")));
    for i in 0..n {
        let resource = format!("/organizations/org-{}/documents/doc-{i}/*", i % 97);
        let mut record = Record::new(format!("record-{i}")).statement(
            Statement::new()
                .roles(["reader"])
                .resources([resource.clone()])
                .users([format!("user-{i}")]),
        );
        if i.is_multiple_of(10) {
            record = record.statement(
                Statement::new()
                    .roles(["editor"])
                    .resources([resource])
                    .groups(["staff"]),
            );
        }
        b = b.record(record);
    }
    b.build().expect("bench records are valid")
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("authorize_user");
    for n in [10usize, 1_000, 100_000] {
        let authz = Authorizer::new(records(n));
        let i = n / 2;
        let user = format!("user-{i}");
        let resource = format!("/organizations/org-{}/documents/doc-{i}/pages/3", i % 97);
        let other = format!(
            "/organizations/org-{}/documents/doc-{}/pages/3",
            i % 97,
            i + 1
        );
        assert!(
            authz
                .authorize_user(user.as_str(), &resource, "documents:read")
                .is_allowed()
        );
        assert!(
            !authz
                .authorize_user(user.as_str(), &other, "documents:read")
                .is_allowed()
        );

        group.bench_with_input(BenchmarkId::new("allowed", n), &n, |b, _| {
            b.iter(|| {
                authz.authorize_user(
                    black_box(user.as_str()),
                    black_box(&resource),
                    "documents:read",
                )
            })
        });
        group.bench_with_input(BenchmarkId::new("denied", n), &n, |b, _| {
            b.iter(|| {
                authz.authorize_user(
                    black_box(user.as_str()),
                    black_box(&other),
                    "documents:read",
                )
            })
        });
        // A group member whose group holds n/10 statements: the trie, not a scan.
        let staff = "user-3";
        let staff_resource = "/organizations/org-0/documents/doc-0/pages/1";
        let subject = || Subject::user(staff).with_groups(["staff"]);
        assert!(
            authz
                .authorize_user(subject(), staff_resource, "documents:write")
                .is_allowed()
        );
        group.bench_with_input(BenchmarkId::new("group", n), &n, |b, _| {
            b.iter(|| authz.authorize_user(subject(), black_box(staff_resource), "documents:write"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
