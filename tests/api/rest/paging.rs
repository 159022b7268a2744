//! Keyset paging with `@odata.nextLink`: stable while actions are added.

use std::collections::HashSet;

use super::{ACTIONS, Graph};
use crate::helpers::{Backend, TestApp, writer};

/// Follows `@odata.nextLink` from `first`, creating `arrivals` new actions
/// before each next page; returns the ids read and the ids created meanwhile.
async fn page_while_adding(
    graph: &Graph<'_>,
    token: &str,
    first: &str,
) -> (Vec<String>, Vec<String>) {
    let mut read = Vec::new();
    let mut added = Vec::new();
    let mut next = Some(first.to_owned());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let answer = graph.get(&path, token).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        let ids = answer.ids();
        assert!(ids.len() <= 100, "a page holds at most $top");
        read.extend(ids);
        pages += 1;
        next = answer.json()["@odata.nextLink"].as_str().map(|link| {
            assert!(
                link.starts_with(&format!("http://{}{ACTIONS}?", graph.app.address)),
                "{link}"
            );
            assert!(link.contains("$skiptoken="), "{link}");
            link[format!("http://{}", graph.app.address).len()..].to_owned()
        });
        if next.is_some() {
            for i in 0..5 {
                let ip = format!("198.18.{pages}.{i}");
                added.push(
                    graph.block_ip(token, &ip).await["id"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
            }
        }
    }
    (read, added)
}

async fn paging_250_actions_by_100_while_new_ones_arrive_has_no_duplicate_and_no_gap(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let graph = Graph::new(&app).await;
    let token = writer("contoso");
    let mut originals = Vec::new();
    for i in 0..250 {
        let ip = format!("10.1.{}.{}", i / 200, i % 200);
        originals.push(
            graph.block_ip(&token, &ip).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    // Newest first: arrivals land before the cursor and are not read.
    let (read, earlier) = page_while_adding(&graph, &token, &format!("{ACTIONS}?$top=100")).await;
    let newest_first: Vec<String> = originals.iter().rev().cloned().collect();
    assert_eq!(read, newest_first, "every original once, in order");
    assert_eq!(
        earlier.len(),
        10,
        "three pages, arrivals before the second and third"
    );

    // Oldest first: arrivals land after the cursor and are read at the end.
    let (read, added) = page_while_adding(
        &graph,
        &token,
        &format!("{ACTIONS}?$top=100&$orderby=createdDateTime%20asc&$count=true"),
    )
    .await;
    let unique: HashSet<&String> = read.iter().collect();
    assert_eq!(unique.len(), read.len(), "no duplicate");
    assert_eq!(read[..250], originals[..], "every original once, in order");
    assert_eq!(
        read[250..260],
        earlier[..],
        "then what arrived before this pass"
    );
    assert!(
        read[260..].iter().all(|id| added.contains(id)),
        "then only what arrived during it"
    );
}

async fn a_top_over_the_cap_is_served_100_at_a_time(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let graph = Graph::new(&app).await;
    let token = writer("contoso");
    for i in 0..105 {
        graph.block_ip(&token, &format!("10.2.0.{i}")).await;
    }

    let first = graph.get(&format!("{ACTIONS}?$top=999"), &token).await;

    assert_eq!(first.ids().len(), 100);
    let link = first.json()["@odata.nextLink"].as_str().unwrap().to_owned();
    assert!(link.contains("$top=999"), "{link}");
    assert_eq!(
        graph
            .all_ids(&format!("{ACTIONS}?$top=999"), &token)
            .await
            .len(),
        105
    );
}

crate::on_both_backends!(
    paging_250_actions_by_100_while_new_ones_arrive_has_no_duplicate_and_no_gap,
    a_top_over_the_cap_is_served_100_at_a_time,
);
