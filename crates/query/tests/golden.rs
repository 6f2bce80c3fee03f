//! Golden SQL tests: every `tests/sql/*.sql` runs against the fixture lake and its result,
//! pretty-printed, must equal the `.out` file beside it. `UPDATE_GOLDEN=1 cargo test -p
//! tributary-query --test golden` rewrites the `.out` files; review the diff.
//!
//! A first line `-- scope: <tenant>` runs the query with that tenant's read scope; without it
//! queries run with admin scope. A failing query's golden output is `error: <code>: <message>`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use tributary_query::Scope;

fn scope_of(sql: &str) -> Scope {
    sql.lines()
        .next()
        .and_then(|line| line.trim().strip_prefix("-- scope:"))
        .map_or(Scope::All, |tenant| {
            Scope::Tenant(tenant.trim().to_string())
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_files_match_their_golden_output() {
    let lake = common::lake().await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no .sql files in {}", dir.display());
    let mut failures = Vec::new();
    for case in &cases {
        let sql = std::fs::read_to_string(case).unwrap();
        let actual = match lake.engine.execute(&sql, scope_of(&sql)).await {
            Ok(output) => format!("{}\n", common::pretty(&output)),
            Err(error) => format!("error: {}: {error}\n", error.code()),
        };
        let golden = case.with_extension("out");
        if update {
            // A golden file is reviewed in a diff, not durable data: no sync needed.
            #[allow(clippy::disallowed_methods)]
            std::fs::write(&golden, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{}\n--- expected\n{expected}--- actual\n{actual}",
                case.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden file(s) differ (UPDATE_GOLDEN=1 to accept):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
