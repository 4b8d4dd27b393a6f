//! The README's first command: `dastra-connect quickstart` runs to its summary with zero 429s and
//! zero dead-lettered events, creates the bundled sample entities in the emulator, leaves nothing
//! running, and a second run gives the same result; that run, with `--log info`, writes the
//! connectors' log lines to stderr each with its connector's name, and its progress (stderr is not a
//! terminal here) comes as whole lines, not carriage-return runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

/// The summary without the lines that legitimately differ between runs (durations, URLs).
fn summary(args: &[&str]) -> (Vec<String>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dastra-connect")).arg("quickstart").args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "quickstart failed:\n{stdout}\n{stderr}");
    let lines = stdout
        .lines()
        .filter(|l| !l.starts_with("Summary (") && !l.contains("http://"))
        .map(str::to_owned)
        .filter(|l| !l.trim().is_empty())
        .collect();
    (lines, stderr)
}

fn value(lines: &[String], label: &str) -> u64 {
    let line = lines
        .iter()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no `{label}` in {lines:#?}"));
    line.trim_start().trim_start_matches(label).split_whitespace().find_map(|w| w.parse().ok()).unwrap()
}

#[test]
fn quickstart_runs_to_a_clean_summary_and_is_repeatable() {
    let (first, quiet) = summary(&[]);
    assert!(!quiet.contains(" INFO "), "no logs unless asked: {quiet}");
    assert_eq!(value(&first, "429 answers"), 0);
    assert_eq!(value(&first, "errors (sink DLQ)"), 0);
    assert!(value(&first, "Assets") > 0, "{first:#?}");
    assert!(value(&first, "Actors") > 0, "{first:#?}");
    // The Salesforce samples' three privacy Cases and the HubSpot samples' four privacy tickets (a
    // fourth Case and a fifth ticket are rejected on purpose).
    assert!(value(&first, "DataSubjectRequests") >= 7, "{first:#?}");
    assert!(first.iter().any(|l| l.contains("hubspot:tickets:3005: mapping_error")), "{first:#?}");
    assert!(value(&first, "Dastra requests used") > 0);
    // Initial sync, route by route: exactly one POST per entity in Dastra, relationships included
    // (their ids are not read back: no `GET GenericRelationships`), and beyond that only what the
    // documented API leaves no way around: a PATCH per processing version after its three-field
    // POST, the DSRs' state PATCHes and closes, and two one-time lookups (area, DSR workflow). 193
    // requests for 150 entities when every generic link cost a POST and a GET; 158 for 150 after;
    // 163–164 for 154 with the DataHub job, whose two aspects are two source versions (one PATCH
    // each unless the sink coalesced them).
    let routes: std::collections::BTreeMap<String, u64> = first
        .iter()
        .map(|l| l.trim())
        .filter(|l| ["GET ", "POST ", "PUT ", "PATCH ", "DELETE "].iter().any(|m| l.starts_with(m)))
        .map(|l| {
            let (route, n) = l.rsplit_once(' ').unwrap();
            (route.trim().to_owned(), n.parse().unwrap())
        })
        .collect();
    let families = [
        "Actors",
        "Assets",
        "Contracts",
        "DataFields",
        "DataProcessings",
        "DataRetentionRules",
        "DataSubjectRequests",
        "GenericRelationships",
    ];
    for family in families {
        assert_eq!(
            routes.get(&format!("POST {family}")).copied().unwrap_or(0),
            value(&first, family),
            "one POST per {family}: {first:#?}"
        );
    }
    let dsrs = value(&first, "DataSubjectRequests");
    let bounded = [
        ("PATCH DataProcessings/{id}", value(&first, "processing")),
        ("PATCH DataSubjectRequests/{id}", dsrs),
        ("POST DataSubjectRequests/{id}/close", dsrs),
        ("GET Areas", 1),
        ("GET Workflows/DataSubject", 1),
    ];
    for (route, n) in routes.iter().filter(|(r, _)| !families.iter().any(|f| **r == format!("POST {f}"))) {
        let Some((_, most)) = bounded.iter().find(|(b, _)| b == route) else {
            panic!("unexpected requests `{route}` ({n}) in the initial sync: {first:#?}")
        };
        assert!(n <= most, "{route}: {n} > {most}: {first:#?}");
    }
    let used = value(&first, "Dastra requests used");
    assert_eq!(used, routes.values().sum::<u64>(), "the lines by route add up to the total: {first:#?}");
    // The Debezium reader ran on its sample topics: its rejected supplier is listed.
    assert!(first.iter().any(|l| l.contains(r#"erp:suppliers:{"id":105}: mapping_error"#)), "{first:#?}");
    // The DataHub source ran on its sample MCL topic (six classified columns, two tables' datasets)
    // and the OpenMetadata source on its sample catalog (five classified columns, three tables'
    // datasets, two pipelines; the DataHub job one more).
    assert_eq!(value(&first, "DataFields"), 6 + 5, "{first:#?}");
    assert_eq!(value(&first, "DataRetentionRules"), 2 + 3, "{first:#?}");
    assert_eq!(value(&first, "DataProcessings"), 2 + 1, "{first:#?}");
    // What reaches Dastra is the same every run; how many requests coalescing saved depends on timing.
    let (second, stderr) = summary(&["--log", "info", "--progress-every", "1s"]);
    assert!(!stderr.contains('\r'), "carriage returns in non-terminal output");
    let progress: Vec<&str> = stderr.lines().filter(|l| l.trim_start().starts_with("events published")).collect();
    assert!(!progress.is_empty(), "{stderr}");
    for (name, line) in [("dastra-sink", "dastra sink started"), ("servicenow", "source started")] {
        let tagged = format!("connector{{connector={name}}}");
        assert!(
            stderr.lines().any(|l| l.contains(&tagged) && l.contains(line)),
            "no `{line}` line tagged {tagged}:\n{stderr}"
        );
    }
    // Request counts (the total and the lines by route under it) depend on timing.
    let by_route = |l: &str| {
        let l = l.trim_start();
        ["GET ", "POST ", "PUT ", "PATCH ", "DELETE "].iter().any(|m| l.starts_with(m))
    };
    let stable = |lines: &[String]| -> Vec<String> {
        lines.iter().filter(|l| !l.contains("requests") && !by_route(l)).cloned().collect()
    };
    assert_eq!(stable(&first), stable(&second), "a second run gives the same result");
}
