//! HubSpot's search paging through the source's `SourceSystem`, against the fake (search cap 10,
//! pages of 5): change pages of any size, read from cursor to cursor, return every record exactly
//! once in `(time, id)` order although a search sorts on one property only and the fake returns
//! records of one millisecond highest id first, and no search ever pages past the cap; more records
//! in one millisecond than the cap fail with a message saying so; a record saved during a read
//! makes no other record skipped; sweeps page by id through the
//! configured filters; the archived listing comes back in `(archivedAt, id)` order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dastra_connect_core::config::Secret;
use dastra_connect_core::source::{Cursor, IdOrder, SourceRecord, SourceSystem, StreamKind};
use dastra_connect_hubspot::client::HubSpotClient;
use dastra_connect_hubspot::fake::{FakeHubSpot, PRIVACY_PIPELINE, RunningFake, TOKEN};
use dastra_connect_hubspot::source::HubSpotSystem;
use dastra_connect_hubspot::{HubSpotConfig, HubSpotObject, ObjectConfig};
use serde_json::json;

fn system(fake: &RunningFake, cap: u32) -> HubSpotSystem {
    let mut cfg = HubSpotConfig::new(Secret::new(TOKEN));
    cfg.url = fake.base_url.parse().unwrap();
    let mut tickets = ObjectConfig::new(HubSpotObject::Tickets);
    tickets.filters.insert("hs_pipeline".into(), PRIVACY_PIPELINE.into());
    cfg.objects = vec![ObjectConfig::new(HubSpotObject::Companies), tickets];
    cfg.search_result_cap = cap;
    cfg.http.max_requests_per_second = Some(500.0);
    cfg.validate("test").unwrap();
    HubSpotSystem::new(HubSpotClient::new(&cfg).unwrap(), &cfg)
}

/// Companies in runs sharing one millisecond (7, 4 and 9, each below the cap) between single ones.
fn populate(fake: &FakeHubSpot) {
    let run = |n: usize, tag: &str| (0..n).map(|i| json!({"name": format!("{tag} {i}")})).collect::<Vec<_>>();
    fake.insert(HubSpotObject::Companies, json!({"name": "first"}));
    fake.insert_many(HubSpotObject::Companies, run(7, "import A"));
    for i in 0..6 {
        fake.insert(HubSpotObject::Companies, json!({"name": format!("single {i}")}));
    }
    fake.insert_many(HubSpotObject::Companies, run(4, "import B"));
    fake.insert(HubSpotObject::Companies, json!({"name": "between"}));
    fake.insert_many(HubSpotObject::Companies, run(9, "import C"));
    fake.insert(HubSpotObject::Companies, json!({"name": "last"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_pages_of_any_size_read_everything_once_in_order_without_passing_the_cap() {
    let fake = FakeHubSpot::with_samples().spawn().await.unwrap();
    fake.state.set_search_cap(10);
    populate(&fake.state);
    let sys = system(&fake, 10);
    let mut expected: Vec<SourceRecord> = fake
        .state
        .records(HubSpotObject::Companies)
        .into_iter()
        .map(|r| dastra_connect_hubspot::source::to_record(HubSpotObject::Companies, r).unwrap())
        .collect();
    expected.sort_by(|a, b| IdOrder::Numeric.cmp_position((a.updated, &a.id), (b.updated, &b.id)));
    let expected: Vec<String> = expected.into_iter().map(|r| r.id).collect();
    assert_eq!(expected.len(), 37);
    for limit in [1u32, 2, 3, 5, 6, 8, 50] {
        let mut after = Cursor::start();
        let mut got: Vec<String> = Vec::new();
        loop {
            let page = sys.fetch_changes("companies", &after, limit).await.unwrap();
            let n = page.records.len();
            assert!(n <= limit as usize, "limit {limit}: {n} records");
            for r in &page.records {
                assert!(
                    IdOrder::Numeric.is_after(r.updated, &r.id, &after),
                    "limit {limit}: {} not after {after:?}",
                    r.id
                );
                after = Cursor::new(r.updated, r.id.clone());
                got.push(r.id.clone());
            }
            if n < limit as usize {
                break;
            }
        }
        assert_eq!(got, expected, "limit {limit}");
    }
    assert_eq!(fake.state.count_status(400), 0, "no search paged past the cap");
    assert!(fake.state.log().iter().filter(|l| l.path.ends_with("/search")).count() > 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_saved_while_a_change_page_is_read_makes_none_skipped() {
    let fake = FakeHubSpot::with_samples().spawn().await.unwrap();
    fake.state.set_search_cap(10);
    populate(&fake.state);
    let sys = system(&fake, 10);
    // Saved just before the second search of the read: the record moves to the end of the order,
    // and a client paging by offset would skip the record that takes its place.
    fake.state.update_before_search(2, HubSpotObject::Companies, 1002, json!({"name": "Brevo (renamed)"}));
    let page = sys.fetch_changes("companies", &Cursor::start(), 100).await.unwrap();
    let ids: Vec<&str> = page.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 37, "{ids:?}");
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 37, "each record once: {ids:?}");
    // Its new version is newer than everything read: the next page from the cursor has it.
    let last = page.records.last().unwrap();
    let next = sys.fetch_changes("companies", &Cursor::new(last.updated, last.id.clone()), 100).await.unwrap();
    assert_eq!(next.records.len(), 1);
    assert_eq!(
        (next.records[0].id.as_str(), &next.records[0].body["properties"]["name"]),
        ("1002", &json!("Brevo (renamed)"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_records_in_one_millisecond_than_the_cap_fail_the_poll_with_the_reason() {
    let fake = FakeHubSpot::new().spawn().await.unwrap();
    fake.state.set_search_cap(10);
    fake.state.insert_many(HubSpotObject::Companies, (0..11).map(|i| json!({"name": format!("c{i}")})).collect());
    let err = system(&fake, 10).fetch_changes("companies", &Cursor::start(), 50).await.unwrap_err();
    assert!(
        err.to_string().contains("more than 10 records have hs_lastmodifieddate = 2025-06-02T08:00:00.250"),
        "{err}"
    );
    assert_eq!(fake.state.count_status(400), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_page_by_id_through_the_filters_and_archived_records_come_in_archive_order() {
    let fake = FakeHubSpot::with_samples().spawn().await.unwrap();
    fake.state.set_search_cap(10);
    for i in 0..12 {
        let pipeline = if i % 3 == 0 { "0" } else { PRIVACY_PIPELINE };
        fake.state.insert(
            HubSpotObject::Tickets,
            json!({"subject": format!("t{i}"), "hs_pipeline": pipeline, "dsr_request_type": "access"}),
        );
    }
    let sys = system(&fake, 10);
    let mut want: Vec<u64> = fake
        .state
        .records(HubSpotObject::Tickets)
        .iter()
        .filter(|t| t["properties"]["hs_pipeline"] == PRIVACY_PIPELINE)
        .map(|t| t["id"].as_str().unwrap().parse().unwrap())
        .collect();
    want.sort();
    let mut got = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = sys.fetch_all(HubSpotObject::Tickets.stream(), after.as_deref(), 4).await.unwrap();
        if after.is_none() {
            assert_eq!(page.total, Some(want.len() as u64));
        }
        got.extend(page.records.iter().map(|r| r.id.parse::<u64>().unwrap()));
        match page.records.last() {
            Some(last) if page.records.len() == 4 => after = Some(last.id.clone()),
            _ => break,
        }
    }
    assert_eq!(got, want, "every privacy ticket once, by id; the support pipeline's never");
    // The contact of each sample ticket came along.
    let page = sys.fetch_all("tickets", None, 50).await.unwrap();
    let t3001 = page.records.iter().find(|r| r.id == "3001").unwrap();
    assert_eq!(t3001.body["contact"]["properties"]["email"], "claire.martin@example.fr");

    // Archived: 1005 first, then 1002; read after the first, only the second.
    assert!(fake.state.archive(HubSpotObject::Companies, 1005));
    assert!(fake.state.archive(HubSpotObject::Companies, 1002));
    let deletes = sys.fetch_deletes("companies", &Cursor::start(), 10).await.unwrap().records;
    let ids: Vec<&str> = deletes.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["1005", "1002"]);
    let rest = sys.fetch_deletes("companies", &deletes[0].position, 10).await.unwrap().records;
    assert_eq!(rest.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["1002"]);
}
