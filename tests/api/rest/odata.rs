//! Query options: each `$filter` operator on each property, `$orderby`,
//! `$top`, `$skip`, and the 400s that name what is not supported.

use std::collections::BTreeSet;

use actiongate::READ_WRITE_ROLE;
use serde_json::json;

use super::{ACTIONS, Graph};
use crate::helpers::{Backend, TestApp, token_with, writer};

/// Four actions of one tenant that differ in every filtered property, and
/// one of another tenant that matches most filters.
struct Seeded {
    ids: [String; 4],
    created: [String; 4],
    token: String,
}

async fn seed(graph: &Graph<'_>) -> Seeded {
    let alice1 = token_with("contoso", "app-1", "alice@contoso.com", &[READ_WRITE_ROLE]);
    let bob1 = token_with("contoso", "app-1", "bob@contoso.com", &[READ_WRITE_ROLE]);
    let alice2 = token_with("contoso", "app-2", "alice@contoso.com", &[READ_WRITE_ROLE]);
    let carol2 = token_with("contoso", "app-2", "carol@contoso.com", &[READ_WRITE_ROLE]);
    let bodies = [
        (
            &alice1,
            json!({"name": "blockIp", "parameters": [{"name": "ip", "value": "10.0.0.1"}], "clientContext": "ticket-1"}),
        ),
        (
            &bob1,
            json!({"name": "blockDomain", "parameters": [{"name": "domain", "value": "evil.example"}], "clientContext": "ticket-2"}),
        ),
        (
            &alice2,
            json!({"name": "allowIp", "parameters": [{"name": "ip", "value": "10.0.0.2"}]}),
        ),
        (
            &carol2,
            json!({"name": "blockUrl", "parameters": [{"name": "url", "value": "https://evil.example/x"}], "clientContext": "case-9"}),
        ),
    ];
    let mut ids = Vec::new();
    let mut created = Vec::new();
    for (token, body) in bodies {
        let answer = graph.post(ACTIONS, token, Some(body)).await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        let action = answer.json();
        ids.push(action["id"].as_str().unwrap().to_owned());
        created.push(action["createdDateTime"].as_str().unwrap().to_owned());
    }
    let canceled = graph
        .post(
            &format!("{ACTIONS}/{}/cancelSecurityAction", ids[3]),
            &carol2,
            None,
        )
        .await;
    assert_eq!(canceled.status, 200);
    let other_tenant = token_with("fabrikam", "app-1", "alice@contoso.com", &[READ_WRITE_ROLE]);
    graph
        .post(
            ACTIONS,
            &other_tenant,
            Some(json!({"name": "blockIp", "parameters": [{"name": "ip", "value": "10.0.0.1"}], "clientContext": "ticket-1"})),
        )
        .await;
    Seeded {
        ids: ids.try_into().unwrap(),
        created: created.try_into().unwrap(),
        token: writer("contoso"),
    }
}

async fn each_filter_operator_selects_exactly_its_actions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let graph = Graph::new(&app).await;
    let s = seed(&graph).await;
    let [a, b, c, d] = ["A", "B", "C", "D"];
    let (c_created, b_created) = (&s.created[2], &s.created[1]);
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("status eq 'Canceled'".into(), vec![d]),
        ("status eq 'notstarted'".into(), vec![a, b, c]),
        (
            "status eq microsoft.graph.operationStatus'NotStarted'".into(),
            vec![a, b, c],
        ),
        ("status ne 'Canceled'".into(), vec![a, b, c]),
        ("status in ('Canceled', 'Running')".into(), vec![d]),
        ("startswith(status, 'Can')".into(), vec![d]),
        ("name eq 'BlockIp'".into(), vec![a]),
        ("name ne 'blockIp'".into(), vec![b, c, d]),
        ("name in ('blockIp', 'ALLOWIP')".into(), vec![a, c]),
        ("startswith(name, 'block')".into(), vec![a, b, d]),
        ("clientContext eq 'ticket-1'".into(), vec![a]),
        ("clientContext ne 'ticket-1'".into(), vec![b, c, d]),
        ("clientContext in ('ticket-2', 'case-9')".into(), vec![b, d]),
        ("startswith(clientContext, 'ticket-')".into(), vec![a, b]),
        (
            "not startswith(clientContext, 'ticket-')".into(),
            vec![c, d],
        ),
        ("appId eq 'app-2'".into(), vec![c, d]),
        ("appId ne 'app-2'".into(), vec![a, b]),
        ("appId in ('app-1')".into(), vec![a, b]),
        ("startswith(appId, 'app-')".into(), vec![a, b, c, d]),
        ("user eq 'alice@contoso.com'".into(), vec![a, c]),
        ("user ne 'alice@contoso.com'".into(), vec![b, d]),
        (
            "user in ('bob@contoso.com', 'carol@contoso.com')".into(),
            vec![b, d],
        ),
        ("startswith(user, 'b')".into(), vec![b]),
        ("startswith(user, 'B')".into(), vec![]),
        (
            "vendorInformation/provider eq 'blocklist'".into(),
            vec![a, b, c, d],
        ),
        ("vendorInformation/provider ne 'blocklist'".into(), vec![]),
        (
            "vendorInformation/provider in ('blocklist', 'other')".into(),
            vec![a, b, c, d],
        ),
        (
            "startswith(vendorInformation/provider, 'blo')".into(),
            vec![a, b, c, d],
        ),
        (
            format!("createdDateTime gt {}", s.created[0]),
            vec![b, c, d],
        ),
        (format!("createdDateTime ge {b_created}"), vec![b, c, d]),
        (format!("createdDateTime lt {b_created}"), vec![a]),
        (format!("createdDateTime le {b_created}"), vec![a, b]),
        (format!("createdDateTime eq {c_created}"), vec![c]),
        (format!("createdDateTime ne {c_created}"), vec![a, b, d]),
        (format!("createdDateTime ge '{c_created}'"), vec![c, d]),
        (format!("lastActionDateTime gt {c_created}"), vec![d]),
        (format!("lastActionDateTime ge {c_created}"), vec![c, d]),
        (format!("lastActionDateTime lt {c_created}"), vec![a, b]),
        (format!("lastActionDateTime le {c_created}"), vec![a, b, c]),
        (format!("lastActionDateTime eq {c_created}"), vec![c]),
        (format!("lastActionDateTime ne {c_created}"), vec![a, b, d]),
        (
            "parameters/any(p: p/name eq 'ip' and p/value eq '10.0.0.1')".into(),
            vec![a],
        ),
        (
            "parameters/any(x: x/value eq 'EVIL.example' and x/name eq 'Domain')".into(),
            vec![b],
        ),
        (
            "parameters/any(p: p/name eq 'ip' and p/value eq '10.9.9.9')".into(),
            vec![],
        ),
        (
            "(name eq 'blockIp' or name eq 'allowIp') and user eq 'alice@contoso.com'".into(),
            vec![a, c],
        ),
        (
            "not (status eq 'Canceled' or appId eq 'app-1')".into(),
            vec![c],
        ),
        (
            "status eq 'NotStarted' and not (user eq 'bob@contoso.com')".into(),
            vec![a, c],
        ),
        ("startswith(user, 'a') eq false".into(), vec![b, d]),
        (
            "name eq 'blockIp' or name eq 'blockUrl' and status eq 'Canceled'".into(),
            vec![a, d],
        ),
        (format!("id eq '{}'", s.ids[0]), vec![a]),
        (format!("id in ({}, '{}')", s.ids[0], s.ids[1]), vec![a, b]),
        (format!("id ne '{}'", s.ids[0]), vec![b, c, d]),
    ];
    let label = |id: &String| ["A", "B", "C", "D"][s.ids.iter().position(|i| i == id).unwrap()];
    for (filter, expected) in cases {
        let path = format!("{ACTIONS}?$filter={}&$count=true", encode(&filter));
        let answer = graph.get(&path, &s.token).await;
        assert_eq!(answer.status, 200, "{filter}: {}", answer.text);
        let found: BTreeSet<&str> = answer
            .ids()
            .iter()
            .map(|id| {
                s.ids
                    .iter()
                    .position(|i| i == id)
                    .map(|_| label(id))
                    .unwrap_or_else(|| panic!("{filter}: another tenant's action {id}"))
            })
            .collect();
        let expected: BTreeSet<&str> = expected.into_iter().collect();
        assert_eq!(found, expected, "{filter}");
        assert_eq!(answer.json()["@odata.count"], expected.len(), "{filter}");
        let count = graph
            .get(
                &format!("{ACTIONS}/$count?$filter={}", encode(&filter)),
                &s.token,
            )
            .await;
        assert_eq!(count.text, expected.len().to_string(), "{filter}");
    }
}

async fn orderby_top_and_skip_shape_the_pages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let graph = Graph::new(&app).await;
    let s = seed(&graph).await;
    let ids = |order: [usize; 4]| order.map(|i| s.ids[i].clone()).to_vec();
    let list = |query: &'static str| graph.all_ids_of(query, &s.token);

    assert_eq!(list("").await, ids([3, 2, 1, 0]), "newest first by default");
    assert_eq!(list("$orderby=createdDateTime").await, ids([0, 1, 2, 3]));
    assert_eq!(
        list("$orderby=createdDateTime asc&$top=1").await,
        ids([0, 1, 2, 3])
    );
    assert_eq!(
        list("$orderby=createdDateTime desc&$top=3").await,
        ids([3, 2, 1, 0])
    );
    let by_last_action = list("$orderby=lastActionDateTime desc&$top=2").await;
    assert_eq!(
        by_last_action[0], s.ids[3],
        "the canceled action moved last"
    );
    assert_eq!(list("orderby=lastActionDateTime asc").await[3], s.ids[3]);

    let skipped = graph
        .get(
            &format!("{ACTIONS}?$orderby=createdDateTime&$skip=1&$top=2"),
            &s.token,
        )
        .await;
    assert_eq!(skipped.ids(), ids([0, 1, 2, 3])[1..3].to_vec());
    let next = skipped.json()["@odata.nextLink"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!next.contains("skip="), "the offset is spent: {next}");
    assert_eq!(
        list("$orderby=createdDateTime&$skip=1&$top=2").await,
        ids([0, 1, 2, 3])[1..].to_vec()
    );
    let top_zero = graph
        .get(&format!("{ACTIONS}?$top=0&$count=true"), &s.token)
        .await;
    let body = top_zero.json();
    assert_eq!(body["value"], json!([]));
    assert_eq!(body["@odata.count"], 4);
    assert!(body.get("@odata.nextLink").is_none());
    let at_bound = graph.get(&format!("{ACTIONS}?$skip=500"), &s.token).await;
    assert_eq!(at_bound.status, 200);
    assert_eq!(at_bound.ids(), Vec::<String>::new());
}

async fn unsupported_expressions_and_options_are_400s_that_name_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let graph = Graph::new(&app).await;
    let token = writer("contoso");
    graph.block_ip(&token, "10.0.0.1").await;
    let deep = format!("{}status eq 'Running'{}", "(".repeat(40), ")".repeat(40));
    let nested_nots = "not (not (not (not (not (status eq 'Running')))))".to_owned();
    let cases: Vec<(String, &str)> = vec![
        (
            format!("$filter={}", encode("actionReason eq 'x'")),
            "actionReason",
        ),
        (format!("$filter={}", encode("name gt 'a'")), "name gt 'a'"),
        (
            format!("$filter={}", encode("contains(name, 'x')")),
            "contains",
        ),
        (
            format!("$filter={}", encode("endswith(user, 'x')")),
            "endswith",
        ),
        (format!("$filter={}", encode("name has 'x'")), "has"),
        (
            format!("$filter={}", encode("parameters/all(p: p/name eq 'ip')")),
            "parameters/all",
        ),
        (
            format!("$filter={}", encode("parameters/any(p: p/name eq 'ip')")),
            "parameters/any",
        ),
        (
            format!("$filter={}", encode("status eq 'Paused'")),
            "Paused",
        ),
        (
            format!("$filter={}", encode("clientContext eq null")),
            "null",
        ),
        (
            format!("$filter={}", encode("createdDateTime in (2026-01-01)")),
            "createdDateTime in",
        ),
        (
            format!("$filter={}", encode("startswith(createdDateTime, '2026')")),
            "startswith(createdDateTime",
        ),
        (
            format!("$filter={}", encode("createdDateTime gt 'yesterday'")),
            "yesterday",
        ),
        (
            format!("$filter={}", encode("status eq 'Running' and")),
            "$filter",
        ),
        (format!("$filter={}", encode("((((")), "$filter"),
        (format!("$filter={}", encode(&deep)), "deep"),
        (format!("$filter={}", encode(&nested_nots)), "nest"),
        (format!("$filter={}", encode(&"x".repeat(5000))), "$filter"),
        ("$expand=states".into(), "$expand"),
        ("$search=evil".into(), "$search"),
        ("$format=xml".into(), "$format"),
        ("colour=red".into(), "colour"),
        ("$top=5&$top=6".into(), "$top"),
        ("$top=-1".into(), "$top"),
        ("$skip=501".into(), "nextLink"),
        ("$count=maybe".into(), "$count"),
        ("$orderby=name".into(), "name"),
        ("$orderby=createdDateTime sideways".into(), "sideways"),
        ("$select=id,colour".into(), "colour"),
        ("$skiptoken=junk".into(), "$skiptoken"),
    ];
    for (query, named) in cases {
        let answer = graph.get(&format!("{ACTIONS}?{query}"), &token).await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.text);
        let (code, message, inner) = answer.graph_error();
        assert_eq!(code, "BadRequest");
        assert!(
            ["BAD_USER_INPUT", "QUERY_TOO_LARGE"].contains(&inner.as_str()),
            "{inner}"
        );
        assert!(message.contains(named), "{query}: {message}");
    }
    for (path, named) in [
        (format!("{ACTIONS}/$count?$top=1"), "$top"),
        (
            format!("{ACTIONS}/00000000-0000-7000-8000-000000000000?$filter=x"),
            "$filter",
        ),
    ] {
        let answer = graph.get(&path, &token).await;
        assert_eq!(answer.status, 400, "{path}");
        assert!(answer.graph_error().1.contains(named), "{path}");
    }
}

/// Percent-encodes a query option's value.
pub fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

impl Graph<'_> {
    /// Every id of the list with `query`, following `@odata.nextLink`.
    async fn all_ids_of(&self, query: &str, token: &str) -> Vec<String> {
        let query: String = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => format!("{k}={}", encode(v)),
                None => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
        self.all_ids(&format!("{ACTIONS}?{query}"), token).await
    }
}

crate::on_both_backends!(
    each_filter_operator_selects_exactly_its_actions,
    orderby_top_and_skip_shape_the_pages,
    unsupported_expressions_and_options_are_400s_that_name_them,
);
