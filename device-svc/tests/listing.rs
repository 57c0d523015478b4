//! Listing, counting and searching devices and device events over real mTLS: AIP-160 filters,
//! text search, keyset paging, page tokens and their refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use common::{AgentKey, Harness, bad_field, enrollment, reason};
use portcullis_proto::device::v1 as pb;
use portcullis_proto::device::v1::device_service_client::DeviceServiceClient;
use tonic::Code;
use tonic::transport::Channel;

type Client = DeviceServiceClient<Channel>;

/// An enrollment of `user_id` on agent `app` with a `platform` profile, adjusted by `edit`.
fn enrollment_on(
    user_id: &str,
    app: &str,
    platform: pb::Platform,
    edit: impl FnOnce(&mut pb::DeviceProfile),
) -> pb::RegisterDeviceRequest {
    let key = AgentKey::generate(&format!("{app}-{user_id}"));
    let mut request = enrollment(user_id, app, &key);
    let profile = request.profile.as_mut().unwrap();
    profile.platform = platform.into();
    edit(profile);
    request
}

async fn enroll(gateway: &mut Client, user_id: &str, app: &str, platform: pb::Platform) -> pb::Device {
    enroll_with(gateway, enrollment_on(user_id, app, platform, |_| {})).await
}

async fn enroll_with(gateway: &mut Client, request: pb::RegisterDeviceRequest) -> pb::Device {
    gateway
        .register_device(request)
        .await
        .unwrap()
        .into_inner()
        .device
        .unwrap()
}

/// Enrolls `count` devices named `{prefix}-NNN` from four concurrent tasks; their ids, sorted.
async fn enroll_many(harness: &Harness, count: usize, prefix: &str) -> Vec<String> {
    const WORKERS: usize = 4;
    let gateway = harness.gateway().await;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let mut gateway = gateway.clone();
        let prefix = prefix.to_owned();
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for i in (worker..count).step_by(WORKERS) {
                let app = format!("{prefix}-{i:03}");
                ids.push(
                    enroll(&mut gateway, &format!("user-{i}"), &app, pb::Platform::Macos)
                        .await
                        .id,
                );
            }
            ids
        });
    }
    let mut ids = Vec::new();
    while let Some(done) = tasks.join_next().await {
        ids.extend(done.unwrap());
    }
    ids.sort();
    ids
}

fn list_request(filter: &str, search: &str, page_size: i32, page_token: &str) -> pb::ListDevicesRequest {
    pb::ListDevicesRequest {
        page_size,
        page_token: page_token.into(),
        filter: filter.into(),
        search: search.into(),
        expand: pb::DeviceExpand::Unspecified.into(),
    }
}

async fn list_page(
    viewer: &mut Client,
    filter: &str,
    search: &str,
    page_size: i32,
    token: &str,
) -> pb::ListDevicesResponse {
    viewer
        .list_devices(list_request(filter, search, page_size, token))
        .await
        .unwrap()
        .into_inner()
}

/// Every page of a listing, walked with `page_size`.
async fn pages(viewer: &mut Client, filter: &str, search: &str, page_size: i32) -> Vec<pb::ListDevicesResponse> {
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = list_page(viewer, filter, search, page_size, &token).await;
        token = page.next_page_token.clone();
        pages.push(page);
        if token.is_empty() {
            return pages;
        }
        assert!(pages.len() < 100, "paging does not end for {filter:?}");
    }
}

/// The ids of every device matching, walked in pages of `page_size`; checks each page is full
/// but the last and that ids come in ascending order.
async fn walk(viewer: &mut Client, filter: &str, search: &str, page_size: i32) -> Vec<String> {
    let pages = pages(viewer, filter, search, page_size).await;
    let last = pages.len() - 1;
    for (i, page) in pages.iter().enumerate() {
        let size = usize::try_from(page_size).unwrap();
        if i < last {
            assert_eq!(
                page.devices.len(),
                size,
                "page {i} of {filter:?} is short but has a next page"
            );
        } else {
            assert!(page.devices.len() <= size);
        }
    }
    let ids: Vec<String> = pages.into_iter().flat_map(|p| p.devices).map(|d| d.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "devices come in id order without repeats"
    );
    ids
}

async fn count(viewer: &mut Client, filter: &str, search: &str) -> i64 {
    viewer
        .count_devices(pb::CountDevicesRequest {
            filter: filter.into(),
            search: search.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .count
}

async fn list_error(viewer: &mut Client, request: pb::ListDevicesRequest) -> tonic::Status {
    viewer.list_devices(request).await.unwrap_err()
}

fn assert_invalid(status: &tonic::Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(reason(status), "INVALID_ARGUMENT", "{status:?}");
    assert_eq!(bad_field(status), field, "{status:?}");
}

fn micros(timestamp: Option<&prost_types::Timestamp>) -> i64 {
    let t = timestamp.expect("timestamp present");
    t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000
}

/// Microseconds since the epoch as RFC 3339 in UTC, with microseconds.
fn rfc3339(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:06}Z",
        second_of_day / 3_600,
        second_of_day % 3_600 / 60,
        second_of_day % 60
    )
}

#[test]
fn rfc3339_formatting_of_the_tests_is_right() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
    assert_eq!(rfc3339(1_714_521_600_000_000 + 250_000), "2024-05-01T00:00:00.250000Z");
    assert_eq!(rfc3339(951_782_400_000_000), "2000-02-29T00:00:00.000000Z");
    assert_eq!(rfc3339(4_107_542_399_999_999), "2100-02-28T23:59:59.999999Z");
}

/// Names of the devices with `ids`, sorted, for readable assertions.
fn names(ids: &[String], name_of: &HashMap<String, &'static str>) -> Vec<&'static str> {
    let mut names: Vec<_> = ids.iter().map(|id| *name_of.get(id).unwrap_or(&"<unknown>")).collect();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn filters_select_exactly_the_matching_devices_and_counts_agree_with_the_pages() {
    use pb::Platform::{Android, Ios, Linux, Macos, Windows};
    let harness = Harness::start().await;
    let mut gateway = harness.gateway().await;
    let mut admin = harness.admin().await;
    let mut viewer = harness.viewer().await;

    let w1 = enroll(&mut gateway, "alice", "w1", Windows).await;
    let w2 = enroll(&mut gateway, "bob", "w2", Windows).await;
    let m1 = enroll(&mut gateway, "alice", "m1", Macos).await;
    let m2 = enroll(&mut gateway, "carol", "m2", Macos).await;
    let l1 = enroll(&mut gateway, "bob", "l1", Linux).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let a1 = enroll(&mut gateway, "carol", "a1", Android).await;
    let i1 = enroll(&mut gateway, "alice", "i1", Ios).await;
    let w3 = enroll(&mut gateway, "dave", "w3", Windows).await;
    // bob joins m1; deactivating l1 unlinks bob from it.
    let m1_joined = enroll(&mut gateway, "bob", "m1", Macos).await;
    assert_eq!(m1_joined.id, m1.id);
    for device in [&w2, &i1] {
        admin
            .suspend_device(pb::SuspendDeviceRequest {
                device_id: device.id.clone(),
            })
            .await
            .unwrap();
    }
    admin
        .deactivate_device(pb::DeactivateDeviceRequest {
            device_id: l1.id.clone(),
        })
        .await
        .unwrap();
    // carol's agent on m2 checks in again: only m2 is seen after that.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let m2_seen = enroll(&mut gateway, "carol", "m2", Macos).await;
    assert_eq!(m2_seen.id, m2.id);

    let created_between = {
        let (before, after) = (micros(l1.create_time.as_ref()), micros(a1.create_time.as_ref()));
        assert!(
            after - before >= 2,
            "enrollments 10 ms apart have distinct create times"
        );
        rfc3339(before + (after - before) / 2)
    };
    let seen_between = {
        let before = [&w1, &w2, &m1_joined, &l1, &a1, &i1, &w3]
            .iter()
            .map(|d| micros(d.last_seen_time.as_ref()))
            .max()
            .unwrap();
        let after = micros(m2_seen.last_seen_time.as_ref());
        assert!(after - before >= 2);
        rfc3339(before + (after - before) / 2)
    };
    let w1_created = rfc3339(micros(w1.create_time.as_ref()));

    let name_of: HashMap<String, &'static str> = [
        (&w1, "w1"),
        (&w2, "w2"),
        (&w3, "w3"),
        (&m1, "m1"),
        (&m2, "m2"),
        (&l1, "l1"),
        (&a1, "a1"),
        (&i1, "i1"),
    ]
    .into_iter()
    .map(|(d, name)| (d.id.clone(), name))
    .collect();
    let all = ["a1", "i1", "l1", "m1", "m2", "w1", "w2", "w3"];

    let cases: Vec<(String, Vec<&str>)> = vec![
        (String::new(), all.to_vec()),
        (
            r#"platform = "WINDOWS" AND status != "SUSPENDED""#.into(),
            vec!["w1", "w3"],
        ),
        (
            "platform = WINDOWS OR platform = MACOS".into(),
            vec!["m1", "m2", "w1", "w2", "w3"],
        ),
        ("platform = windows status = Active".into(), vec!["w1", "w3"]),
        (r#"NOT status = "ACTIVE""#.into(), vec!["i1", "l1", "w2"]),
        ("-status = ACTIVE".into(), vec!["i1", "l1", "w2"]),
        ("status = DEACTIVATED".into(), vec!["l1"]),
        (r#"user_id = "alice""#.into(), vec!["i1", "m1", "w1"]),
        (r#"user_id = "bob""#.into(), vec!["m1", "w2"]),
        (r#"user_id != "alice""#.into(), vec!["a1", "l1", "m2", "w2", "w3"]),
        (r#"user_id = "nobody""#.into(), vec![]),
        (format!(r#"create_time > "{created_between}""#), vec!["a1", "i1", "w3"]),
        (
            format!("create_time <= {created_between}"),
            vec!["l1", "m1", "m2", "w1", "w2"],
        ),
        (format!(r#"create_time = "{w1_created}""#), vec!["w1"]),
        (
            format!("create_time >= '{w1_created}' AND create_time < '{created_between}'"),
            vec!["l1", "m1", "m2", "w1", "w2"],
        ),
        (format!(r#"last_seen_time > "{seen_between}""#), vec!["m2"]),
        (
            format!(r#"NOT last_seen_time > "{seen_between}""#),
            vec!["a1", "i1", "l1", "m1", "w1", "w2", "w3"],
        ),
        ("managed = false".into(), all.to_vec()),
        ("managed = TRUE".into(), vec![]),
        // OR binds tighter than AND (AIP-160): SUSPENDED AND (WINDOWS OR MACOS).
        (
            "status = SUSPENDED AND platform = WINDOWS OR platform = MACOS".into(),
            vec!["w2"],
        ),
        (
            "(status = SUSPENDED AND platform = WINDOWS) OR platform = MACOS".into(),
            vec!["m1", "m2", "w2"],
        ),
        (
            "(platform = WINDOWS OR platform = IOS) AND NOT status = SUSPENDED".into(),
            vec!["w1", "w3"],
        ),
        (
            format!("NOT (platform = WINDOWS OR platform = MACOS) AND create_time > \"{created_between}\""),
            vec!["a1", "i1"],
        ),
        (
            r#"user_id = "alice" AND (status = SUSPENDED OR platform = MACOS)"#.into(),
            vec!["i1", "m1"],
        ),
    ];
    for (filter, expected) in cases {
        let ids = walk(&mut viewer, &filter, "", 3).await;
        assert_eq!(names(&ids, &name_of), expected, "filter {filter:?}");
        assert_eq!(
            count(&mut viewer, &filter, "").await,
            i64::try_from(ids.len()).unwrap(),
            "count of {filter:?}"
        );
        // One big page lists the same devices as pages of three.
        assert_eq!(
            walk(&mut viewer, &filter, "", 200).await,
            ids,
            "filter {filter:?} in one page"
        );
    }
}

#[tokio::test]
async fn search_matches_name_words_and_identifiers_by_prefix_ignoring_case() {
    use pb::Platform::{Android, Ios, Linux, Macos, Windows};
    let harness = Harness::start().await;
    let mut gateway = harness.gateway().await;
    let mut viewer = harness.viewer().await;

    let macbook = enroll_with(
        &mut gateway,
        enrollment_on("alice", "mac", Macos, |p| {
            p.display_name = "Alice's MacBook Pro".into();
            p.serial_number = "C02XYZ123".into();
        }),
    )
    .await;
    let server = enroll_with(
        &mut gateway,
        enrollment_on("ops", "srv", Linux, |p| {
            p.display_name = "Build Server 7".into();
            p.serial_number = "SRV-0007".into();
        }),
    )
    .await;
    let pixel = enroll_with(
        &mut gateway,
        enrollment_on("bob", "pixel", Android, |p| {
            p.display_name = "Pixel 8 Pro".into();
            p.serial_number = String::new();
            p.imei = "356938035643809".into();
            p.meid = "A0000012345678".into();
        }),
    )
    .await;
    let iphone = enroll_with(
        &mut gateway,
        enrollment_on("carol", "iphone", Ios, |p| {
            p.display_name = "Carol's iPhone".into();
            p.serial_number = String::new();
            p.udid = "00008101-000A1C2E3E78001E".into();
        }),
    )
    .await;
    let laptop = enroll_with(
        &mut gateway,
        enrollment_on("dave", "laptop", Windows, |p| {
            p.display_name = "FINANCE-LAPTOP-02".into();
            p.serial_number = String::new();
            p.sid = "S-1-5-21-3623811015-3361044348-30300820-1013".into();
        }),
    )
    .await;
    let name_of: HashMap<String, &'static str> = [
        (&macbook, "macbook"),
        (&server, "server"),
        (&pixel, "pixel"),
        (&iphone, "iphone"),
        (&laptop, "laptop"),
    ]
    .into_iter()
    .map(|(d, name)| (d.id.clone(), name))
    .collect();

    let cases: &[(&str, &str, &[&str])] = &[
        // Display name: a prefix of any word, in any case.
        ("", "macbook", &["macbook"]),
        ("", "MACB", &["macbook"]),
        ("", "pro", &["macbook", "pixel"]),
        ("", "ALICE", &["macbook"]),
        ("", "carol's", &["iphone"]),
        ("", "Alice's MacBook", &["macbook"]),
        ("", "iphone", &["iphone"]),
        ("", "server", &["server"]),
        ("", "finance-lap", &["laptop"]),
        ("", "book", &[]),
        ("", "  macbook  ", &["macbook"]),
        // Identifiers, by prefix.
        ("", "c02x", &["macbook"]),
        ("", "SRV-00", &["server"]),
        ("", "3569380356", &["pixel"]),
        ("", "a00000123", &["pixel"]),
        ("", "00008101-000a1c", &["iphone"]),
        ("", "s-1-5-21-3623811015", &["laptop"]),
        ("", "S-1-5-21-3623811015-3361044348-30300820-1013", &["laptop"]),
        ("", "643809", &[]),
        // With a filter.
        ("platform = ANDROID", "pro", &["pixel"]),
        ("platform = MACOS OR platform = ANDROID", "pro", &["macbook", "pixel"]),
        ("platform = WINDOWS", "pro", &[]),
        // Nothing matches.
        ("", "zzz", &[]),
    ];
    for &(filter, search, expected) in cases {
        let page = list_page(&mut viewer, filter, search, 0, "").await;
        let ids: Vec<String> = page.devices.iter().map(|d| d.id.clone()).collect();
        assert_eq!(
            names(&ids, &name_of),
            expected,
            "search {search:?} with filter {filter:?}"
        );
        assert!(page.next_page_token.is_empty());
        assert_eq!(
            count(&mut viewer, filter, search).await,
            i64::try_from(expected.len()).unwrap(),
            "count {search:?}"
        );
    }

    // Searching pages like everything else, with and without a filter.
    let ids = walk(&mut viewer, "", "pro", 1).await;
    assert_eq!(names(&ids, &name_of), ["macbook", "pixel"]);
    let ids = walk(&mut viewer, "platform = MACOS OR platform = ANDROID", "pro", 1).await;
    assert_eq!(names(&ids, &name_of), ["macbook", "pixel"]);
}

#[tokio::test]
async fn a_nul_character_in_a_search_or_filter_value_is_an_invalid_argument_on_every_database() {
    let harness = Harness::start().await;
    enroll(&mut harness.gateway().await, "alice", "a1", pb::Platform::Macos).await;
    let mut viewer = harness.viewer().await;

    let err = list_error(&mut viewer, list_request("", "mac\0book", 0, "")).await;
    assert_invalid(&err, "search");
    let err = viewer
        .count_devices(pb::CountDevicesRequest {
            filter: String::new(),
            search: "mac\0book".into(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "search");

    let err = list_error(&mut viewer, list_request("user_id = \"ali\0ce\"", "", 0, "")).await;
    assert_invalid(&err, "filter");
    let err = viewer
        .list_device_events(pb::ListDeviceEventsRequest {
            filter: "device_id = \"d\0\"".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "filter");
}

#[tokio::test]
async fn a_search_longer_than_one_hundred_characters_is_rejected() {
    let harness = Harness::start().await;
    let mut viewer = harness.viewer().await;
    let too_long = "a".repeat(101);
    let err = list_error(&mut viewer, list_request("", &too_long, 0, "")).await;
    assert_invalid(&err, "search");
    let err = viewer
        .count_devices(pb::CountDevicesRequest {
            filter: String::new(),
            search: too_long,
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "search");

    // The limit counts characters, not bytes.
    let page = list_page(&mut viewer, "", &"é".repeat(100), 0, "").await;
    assert!(page.devices.is_empty());
    assert_eq!(count(&mut viewer, "", &"a".repeat(100)).await, 0);
}

#[tokio::test]
async fn pages_hold_twenty_devices_by_default_and_the_last_page_has_no_token() {
    let harness = Harness::start().await;
    let all = enroll_many(&harness, 45, "dev").await;
    let mut viewer = harness.viewer().await;

    let default = pages(&mut viewer, "", "", 0).await;
    let sizes: Vec<usize> = default.iter().map(|p| p.devices.len()).collect();
    assert_eq!(sizes, [20, 20, 5]);
    assert!(!default[0].next_page_token.is_empty());
    assert!(!default[1].next_page_token.is_empty());
    assert!(default[2].next_page_token.is_empty());
    let listed: Vec<String> = default.iter().flat_map(|p| &p.devices).map(|d| d.id.clone()).collect();
    assert_eq!(listed, all, "every device once, in id order");

    let sevens = pages(&mut viewer, "", "", 7).await;
    assert_eq!(
        sevens.iter().map(|p| p.devices.len()).collect::<Vec<_>>(),
        [7, 7, 7, 7, 7, 7, 3]
    );
    assert_eq!(walk(&mut viewer, "", "", 7).await, all);

    // A page size that fits exactly leaves no token and no empty page behind.
    let exact = pages(&mut viewer, "", "", 45).await;
    assert_eq!(exact.len(), 1);
    assert_eq!(exact[0].devices.len(), 45);
    assert!(exact[0].next_page_token.is_empty());
    let fifteen = pages(&mut viewer, "", "", 15).await;
    assert_eq!(
        fifteen.iter().map(|p| p.devices.len()).collect::<Vec<_>>(),
        [15, 15, 15]
    );

    assert_eq!(count(&mut viewer, "", "").await, 45);
}

#[tokio::test]
async fn page_sizes_above_two_hundred_are_served_as_two_hundred() {
    let harness = Harness::start().await;
    let all = enroll_many(&harness, 205, "bulk").await;
    let mut viewer = harness.viewer().await;
    for requested in [500, 201, i32::MAX] {
        let first = list_page(&mut viewer, "", "", requested, "").await;
        assert_eq!(first.devices.len(), 200, "page_size {requested}");
        assert!(!first.next_page_token.is_empty());
        let second = list_page(&mut viewer, "", "", requested, &first.next_page_token).await;
        assert_eq!(second.devices.len(), 5);
        assert!(second.next_page_token.is_empty());
        let listed: Vec<String> = first
            .devices
            .iter()
            .chain(&second.devices)
            .map(|d| d.id.clone())
            .collect();
        assert_eq!(listed, all);
    }
    assert_eq!(count(&mut viewer, "", "").await, 205);
}

#[tokio::test]
async fn a_negative_page_size_is_rejected() {
    let harness = Harness::start().await;
    let mut viewer = harness.viewer().await;
    let err = list_error(&mut viewer, list_request("", "", -1, "")).await;
    assert_invalid(&err, "page_size");
    let err = viewer
        .list_device_events(pb::ListDeviceEventsRequest {
            page_size: -20,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "page_size");
}

#[tokio::test]
async fn paging_while_devices_are_enrolled_lists_each_existing_device_exactly_once() {
    let harness = Harness::start().await;
    let existing = enroll_many(&harness, 60, "old").await;
    let mut viewer = harness.viewer().await;

    let (sent, mut enrolled) = tokio::sync::mpsc::unbounded_channel();
    let mut gateway = harness.gateway().await;
    let inserter = tokio::spawn(async move {
        for i in 0..40 {
            let device = enroll(&mut gateway, "newcomer", &format!("new-{i:02}"), pb::Platform::Windows).await;
            if sent.send(device.id).is_err() {
                break;
            }
        }
    });

    let mut listed = Vec::new();
    let mut inserted = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = list_page(&mut viewer, "", "", 7, &token).await;
        pages += 1;
        assert!(page.devices.len() <= 7);
        listed.extend(page.devices.into_iter().map(|d| d.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        // Let at least one enrollment land between two pages.
        if let Some(id) = enrolled.recv().await {
            inserted.push(id);
        }
        assert!(pages < 50, "paging does not end");
    }
    inserter.await.unwrap();
    while let Ok(id) = enrolled.try_recv() {
        inserted.push(id);
    }
    assert_eq!(inserted.len(), 40);

    let mut seen = BTreeSet::new();
    for id in &listed {
        assert!(seen.insert(id.clone()), "device {id} listed twice");
    }
    for id in &existing {
        assert_eq!(
            listed.iter().filter(|l| *l == id).count(),
            1,
            "existing device {id} listed once"
        );
    }
    let known: BTreeSet<&String> = existing.iter().chain(&inserted).collect();
    assert!(
        listed.iter().all(|id| known.contains(id)),
        "only real devices are listed"
    );
    assert!(pages >= 9, "60 devices take at least 9 pages of 7");
    assert_eq!(count(&mut viewer, "", "").await, 100);
}

#[tokio::test]
async fn page_tokens_are_tamper_evident_and_bound_to_their_query() {
    use pb::Platform::{Macos, Windows};
    let harness = Harness::start().await;
    let mut gateway = harness.gateway().await;
    for (app, platform) in [
        ("d1", Windows),
        ("d2", Macos),
        ("d3", Windows),
        ("d4", Macos),
        ("d5", Macos),
    ] {
        enroll(&mut gateway, "alice", app, platform).await;
    }
    let mut viewer = harness.viewer().await;

    let first = list_page(&mut viewer, "", "", 2, "").await;
    let token = first.next_page_token.clone();
    assert!(!token.is_empty());
    assert!(
        first.devices.iter().all(|d| !token.contains(&d.id)),
        "the token does not show the cursor"
    );

    // The same token continues the same query, as often as asked, at any page size.
    let second = list_page(&mut viewer, "", "", 2, &token).await;
    let again = list_page(&mut viewer, "", "", 2, &token).await;
    assert_eq!(second, again);
    assert_eq!(second.devices.len(), 2);
    assert!(second.devices[0].id > first.devices[1].id);
    let rest = list_page(&mut viewer, "", "", 10, &token).await;
    assert_eq!(rest.devices.len(), 3);
    assert!(rest.next_page_token.is_empty());

    // Altered by one character.
    let middle = token.len() / 2;
    let replacement = if &token[middle..=middle] == "A" { "B" } else { "A" };
    let altered = format!("{}{replacement}{}", &token[..middle], &token[middle + 1..]);
    assert_ne!(altered, token);
    assert_invalid(
        &list_error(&mut viewer, list_request("", "", 2, &altered)).await,
        "page_token",
    );
    // Cut short or lengthened.
    assert_invalid(
        &list_error(&mut viewer, list_request("", "", 2, &token[..token.len() - 4])).await,
        "page_token",
    );
    assert_invalid(
        &list_error(&mut viewer, list_request("", "", 2, &format!("{token}AAAA"))).await,
        "page_token",
    );

    // Used with another filter or search.
    let err = list_error(&mut viewer, list_request("platform = MACOS", "", 2, &token)).await;
    assert_invalid(&err, "page_token");
    let err = list_error(&mut viewer, list_request("", "alice", 2, &token)).await;
    assert_invalid(&err, "page_token");
    let macos = list_page(&mut viewer, "platform = MACOS", "", 1, "").await;
    assert_eq!(macos.devices.len(), 1);
    let err = list_error(
        &mut viewer,
        list_request("platform = WINDOWS", "", 1, &macos.next_page_token),
    )
    .await;
    assert_invalid(&err, "page_token");
    let err = list_error(&mut viewer, list_request("", "", 1, &macos.next_page_token)).await;
    assert_invalid(&err, "page_token");
    // The filter's text is the query: the same meaning spelled differently is another query.
    let err = list_error(
        &mut viewer,
        list_request("platform = macos", "", 1, &macos.next_page_token),
    )
    .await;
    assert_invalid(&err, "page_token");

    // Used with another method.
    let err = viewer
        .list_device_events(pb::ListDeviceEventsRequest {
            page_size: 2,
            page_token: token.clone(),
            filter: String::new(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "page_token");

    // Garbage.
    for garbage in ["garbage", "!!!", "AAAA", "bm90IGEgdG9rZW4", &"A".repeat(5000)] {
        assert_invalid(
            &list_error(&mut viewer, list_request("", "", 2, garbage)).await,
            "page_token",
        );
    }
}

#[tokio::test]
async fn filter_syntax_errors_name_the_filter_and_the_position() {
    let harness = Harness::start().await;
    let mut viewer = harness.viewer().await;
    let cases: &[(&str, &str, usize)] = &[
        (r#"colour = "red""#, "unknown field 'colour'", 0),
        (r#"platform > "WINDOWS""#, "'>' is not allowed on field 'platform'", 9),
        (r#"user_id >= "alice""#, "'>=' is not allowed on field 'user_id'", 8),
        (r#"platform = "WINDOWS"#, "unterminated string", 11),
        (r#"platform = "BEOS""#, "invalid value 'BEOS' for field 'platform'", 11),
        ("managed = maybe", "invalid value 'maybe' for field 'managed'", 10),
        (
            r#"create_time > "last tuesday""#,
            "invalid timestamp 'last tuesday'",
            14,
        ),
        (
            r#"create_time < "2024-02-30T00:00:00Z""#,
            "invalid timestamp '2024-02-30T00:00:00Z'",
            14,
        ),
        ("last_seen_time >= 1714521600", "invalid timestamp '1714521600'", 18),
        ("platform = WINDOWS AND", "expected a comparison", 22),
        ("platform = WINDOWS AND AND status = ACTIVE", "unexpected 'AND'", 23),
        ("(platform = WINDOWS OR platform = MACOS", "unclosed '('", 0),
        ("status = ACTIVE)", "unexpected ')'", 15),
        ("status ACTIVE", "expected an operator after 'status'", 7),
    ];
    for &(filter, what, position) in cases {
        let list = list_error(&mut viewer, list_request(filter, "", 0, "")).await;
        let count = viewer
            .count_devices(pb::CountDevicesRequest {
                filter: filter.into(),
                search: String::new(),
            })
            .await
            .unwrap_err();
        for err in [list, count] {
            assert_invalid(&err, "filter");
            assert!(
                err.message().contains(what),
                "{filter:?}: {:?} lacks {what:?}",
                err.message()
            );
            assert!(
                err.message().ends_with(&format!(" at {position}")),
                "{filter:?}: {:?} lacks position {position}",
                err.message()
            );
        }
    }

    // Event filters have their own fields.
    let err = viewer
        .list_device_events(pb::ListDeviceEventsRequest {
            filter: "platform = WINDOWS".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "filter");
    assert!(
        err.message().ends_with("unknown field 'platform' at 0"),
        "{:?}",
        err.message()
    );
}

#[tokio::test]
async fn expanding_users_fills_them_in_and_keys_are_always_there() {
    let harness = Harness::start().await;
    let mut gateway = harness.gateway().await;
    let shared = enroll(&mut gateway, "alice", "shared", pb::Platform::Macos).await;
    enroll(&mut gateway, "bob", "shared", pb::Platform::Macos).await;
    let own = enroll(&mut gateway, "carol", "own", pb::Platform::Windows).await;
    let mut viewer = harness.viewer().await;

    let users_of = |d: &pb::Device| d.users.iter().map(|u| u.user_id.clone()).collect::<Vec<_>>();
    let kids_of = |d: &pb::Device| {
        d.keys
            .iter()
            .map(|k| (k.kid.clone(), k.user_id.clone()))
            .collect::<Vec<_>>()
    };
    let expected_keys = |id: &str| -> Vec<(String, String)> {
        if id == shared.id {
            vec![
                ("shared-alice".into(), "alice".into()),
                ("shared-bob".into(), "bob".into()),
            ]
        } else {
            vec![("own-carol".into(), "carol".into())]
        }
    };

    let plain = list_page(&mut viewer, "", "", 0, "").await.devices;
    assert_eq!(plain.len(), 2);
    for device in &plain {
        assert!(device.users.is_empty(), "users stay empty unless expanded");
        assert_eq!(kids_of(device), expected_keys(&device.id));
    }

    // Expanded, page by page.
    let mut expanded = Vec::new();
    let mut token = String::new();
    loop {
        let page = viewer
            .list_devices(pb::ListDevicesRequest {
                page_size: 1,
                page_token: token,
                expand: pb::DeviceExpand::Users.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        expanded.extend(page.devices);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(expanded.len(), 2);
    for device in &expanded {
        let expected: Vec<String> = if device.id == shared.id {
            vec!["alice".into(), "bob".into()]
        } else {
            vec!["carol".into()]
        };
        assert_eq!(users_of(device), expected);
        assert!(device.users.iter().all(|u| u.create_time.is_some()));
        assert_eq!(kids_of(device), expected_keys(&device.id));
    }
    assert!(expanded.iter().any(|d| d.id == own.id));

    // Expanding with a filter on users.
    let bobs = viewer
        .list_devices(pb::ListDevicesRequest {
            filter: "user_id = bob".into(),
            expand: pb::DeviceExpand::Users.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .devices;
    assert_eq!(bobs.len(), 1);
    assert_eq!(
        users_of(&bobs[0]),
        ["alice", "bob"],
        "all users of the device, not only the one filtered on"
    );

    let err = viewer
        .list_devices(pb::ListDevicesRequest {
            expand: 7,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "expand");
}

async fn event_pages(viewer: &mut Client, filter: &str, page_size: i32) -> Vec<pb::ListDeviceEventsResponse> {
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = viewer
            .list_device_events(pb::ListDeviceEventsRequest {
                page_size,
                page_token: token,
                filter: filter.into(),
            })
            .await
            .unwrap()
            .into_inner();
        token = page.next_page_token.clone();
        pages.push(page);
        if token.is_empty() {
            return pages;
        }
        assert!(pages.len() < 100, "paging does not end");
    }
}

async fn events(viewer: &mut Client, filter: &str, page_size: i32) -> Vec<pb::DeviceEvent> {
    event_pages(viewer, filter, page_size)
        .await
        .into_iter()
        .flat_map(|p| p.events)
        .collect()
}

#[tokio::test]
async fn device_events_page_and_filter_by_type_device_and_user() {
    let harness = Harness::start().await;
    let mut gateway = harness.gateway().await;
    let mut admin = harness.admin().await;
    let mut viewer = harness.viewer().await;
    let d1 = enroll(&mut gateway, "alice", "e1", pb::Platform::Macos).await.id;
    let d2 = enroll(&mut gateway, "bob", "e2", pb::Platform::Windows).await.id;
    let d3 = enroll(&mut gateway, "carol", "e3", pb::Platform::Linux).await.id;
    enroll(&mut gateway, "bob", "e1", pb::Platform::Macos).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    admin
        .suspend_device(pb::SuspendDeviceRequest { device_id: d2.clone() })
        .await
        .unwrap();

    let summary = |events: &[pb::DeviceEvent]| {
        events
            .iter()
            .map(|e| (e.event_type.clone(), e.device_id.clone(), e.user_id.clone()))
            .collect::<Vec<_>>()
    };
    let ev = |t: &str, d: &str, u: &str| (t.to_owned(), d.to_owned(), u.to_owned());
    let (create, add, suspend) = (
        "device.enrollment.create",
        "device.user.add",
        "device.lifecycle.suspend",
    );

    // Default page size holds all eight, oldest first.
    let default = event_pages(&mut viewer, "", 0).await;
    assert_eq!(default.len(), 1);
    assert!(default[0].next_page_token.is_empty());
    let all = default[0].events.clone();
    assert_eq!(
        summary(&all),
        [
            ev(create, &d1, "alice"),
            ev(add, &d1, "alice"),
            ev(create, &d2, "bob"),
            ev(add, &d2, "bob"),
            ev(create, &d3, "carol"),
            ev(add, &d3, "carol"),
            ev(add, &d1, "bob"),
            ev(suspend, &d2, ""),
        ]
    );

    // Pages of three: 3, 3, 2, the same events in the same order.
    let threes = event_pages(&mut viewer, "", 3).await;
    assert_eq!(threes.iter().map(|p| p.events.len()).collect::<Vec<_>>(), [3, 3, 2]);
    assert!(threes[2].next_page_token.is_empty());
    assert_eq!(threes.into_iter().flat_map(|p| p.events).collect::<Vec<_>>(), all);

    let added = events(&mut viewer, r#"event_type = "device.user.add""#, 2).await;
    assert_eq!(
        summary(&added),
        [
            ev(add, &d1, "alice"),
            ev(add, &d2, "bob"),
            ev(add, &d3, "carol"),
            ev(add, &d1, "bob")
        ]
    );

    let on_d1 = events(&mut viewer, &format!(r#"device_id = "{d1}""#), 1).await;
    assert_eq!(
        summary(&on_d1),
        [ev(create, &d1, "alice"), ev(add, &d1, "alice"), ev(add, &d1, "bob")]
    );

    let joins_d1 = events(
        &mut viewer,
        &format!(r#"device_id = "{d1}" AND event_type = "device.user.add""#),
        1,
    )
    .await;
    assert_eq!(summary(&joins_d1), [ev(add, &d1, "alice"), ev(add, &d1, "bob")]);

    let not_added = events(&mut viewer, "NOT event_type = \"device.user.add\"", 0).await;
    assert_eq!(
        summary(&not_added),
        [
            ev(create, &d1, "alice"),
            ev(create, &d2, "bob"),
            ev(create, &d3, "carol"),
            ev(suspend, &d2, "")
        ]
    );

    let d1_or_d3 = events(&mut viewer, &format!("device_id = {d1} OR device_id = {d3}"), 2).await;
    assert_eq!(d1_or_d3.len(), 5);

    let bob = events(&mut viewer, r#"user_id = "bob""#, 0).await;
    assert_eq!(
        summary(&bob),
        [ev(create, &d2, "bob"), ev(add, &d2, "bob"), ev(add, &d1, "bob")]
    );

    let suspended_at = rfc3339(micros(all[7].create_time.as_ref()));
    let late = events(&mut viewer, &format!(r#"create_time >= "{suspended_at}""#), 0).await;
    assert_eq!(summary(&late), [ev(suspend, &d2, "")]);
    let early = events(&mut viewer, &format!(r#"create_time < "{suspended_at}""#), 0).await;
    assert_eq!(early.len(), 7);

    assert!(
        events(&mut viewer, r#"device_id = "no-such-device""#, 0)
            .await
            .is_empty()
    );

    // A token from one event filter does not continue another.
    let first = event_pages(&mut viewer, r#"event_type = "device.user.add""#, 1).await;
    let token = first[0].next_page_token.clone();
    let err = viewer
        .list_device_events(pb::ListDeviceEventsRequest {
            page_size: 1,
            page_token: token,
            filter: r#"event_type = "device.enrollment.create""#.into(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "page_token");
}
