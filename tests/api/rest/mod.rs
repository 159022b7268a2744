//! The Graph REST face under `/beta`, spoken to as a Graph script would.
//!
//! Every answer these tests receive is checked against the OpenAPI document
//! the gateway serves at `/beta/openapi.json`: the status is one the
//! operation declares, the media type is the declared one, the body validates
//! against the declared schema (JSON Schema 2020-12, formats included), and
//! declared headers are present.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;

mod batch;
mod endpoints;
mod errors;
mod faces;
mod odata;
mod paging;

/// The collection's path.
pub const ACTIONS: &str = "/beta/security/securityActions";

/// An answer of the face.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|_| panic!("a JSON body, not {:?}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The ids in `value` of a collection, in order.
    pub fn ids(&self) -> Vec<String> {
        self.json()["value"]
            .as_array()
            .unwrap_or_else(|| panic!("a collection: {}", self.text))
            .iter()
            .map(|a| a["id"].as_str().expect("an id").to_owned())
            .collect()
    }

    /// Graph's error body, checked: `error.code`, `error.message`,
    /// `innerError.code` (the gateway's code), its `request-id` equal to the
    /// header, a date.
    pub fn graph_error(&self) -> (String, String, String) {
        let body = self.json();
        let error = &body["error"];
        let inner = &error["innerError"];
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{body}"
        );
        assert_eq!(
            inner["request-id"].as_str(),
            self.header("request-id"),
            "{body}"
        );
        assert!(
            chrono::DateTime::parse_from_rfc3339(inner["date"].as_str().unwrap_or("")).is_ok(),
            "{body}"
        );
        (
            error["code"].as_str().expect("error.code").to_owned(),
            error["message"].as_str().expect("error.message").to_owned(),
            inner["code"].as_str().expect("innerError.code").to_owned(),
        )
    }
}

/// A client of the face that checks every answer against the OpenAPI document.
pub struct Graph<'a> {
    pub app: &'a TestApp,
    openapi: Value,
}

impl<'a> Graph<'a> {
    pub async fn new(app: &'a TestApp) -> Graph<'a> {
        let response = app
            .client
            .get(app.url("/beta/openapi.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let openapi: Value = response.json().await.unwrap();
        assert_eq!(openapi["openapi"], "3.1.0");
        Graph { app, openapi }
    }

    /// Sends a request; `path` may carry a query string.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self.app.client.request(method.clone(), self.app.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the gateway answers");
        let answer = Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        };
        self.check(&method, path, &answer);
        answer
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.send(Method::GET, path, Some(token), None, &[]).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Option<Value>) -> Answer {
        self.send(Method::POST, path, Some(token), body, &[]).await
    }

    /// Creates `blockIp` of `ip` and returns the action.
    pub async fn block_ip(&self, token: &str, ip: &str) -> Value {
        let answer = self
            .post(
                ACTIONS,
                token,
                Some(json!({"name": "blockIp", "parameters": [{"name": "ip", "value": ip}]})),
            )
            .await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        answer.json()
    }

    /// Every id of the list at `path`, following `@odata.nextLink`.
    pub async fn all_ids(&self, path: &str, token: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut next = Some(path.to_owned());
        while let Some(path) = next.take() {
            let answer = self.get(&path, token).await;
            assert_eq!(answer.status, 200, "{}", answer.text);
            ids.extend(answer.ids());
            next = answer.json()["@odata.nextLink"].as_str().map(|link| {
                link.strip_prefix(&format!("http://{}", self.app.address))
                    .unwrap_or_else(|| panic!("an absolute link to the gateway: {link}"))
                    .to_owned()
            });
        }
        ids
    }

    /// Checks `answer` against the operation of `method` and `path` in the
    /// document; answers of paths and methods the document does not have
    /// (the 404 and 405 fallbacks) must at least be Graph errors.
    fn check(&self, method: &Method, path: &str, answer: &Answer) {
        let path = path.split('?').next().unwrap_or(path);
        let Some(operation) = self.operation(method, path) else {
            assert!(
                answer.status == 404 || answer.status == 405,
                "{method} {path} is not in the document but answered {}",
                answer.status
            );
            answer.graph_error();
            return;
        };
        let status = answer.status.to_string();
        let declared = &operation["responses"][&status];
        assert!(
            declared.is_object(),
            "{method} {path}: {status} is not a declared answer: {}",
            answer.text
        );
        let Some(content) = declared["content"].as_object() else {
            assert!(
                answer.text.is_empty(),
                "{method} {path} {status}: no body declared, got {}",
                answer.text
            );
            return;
        };
        let media_type = answer
            .header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        let schema = content.get(&media_type).unwrap_or_else(|| {
            panic!("{method} {path} {status}: {media_type} is not a declared media type")
        })["schema"]
            .clone();
        let instance: Value = match media_type.as_str() {
            "application/json" => answer.json(),
            _ => serde_json::from_str(&answer.text).unwrap_or(Value::String(answer.text.clone())),
        };
        let mut root = schema;
        root["components"] = self.openapi["components"].clone();
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .expect("a valid schema");
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {status} does not match the document: {errors:?}\n{instance:#}"
        );
        if let Some(headers) = declared["headers"].as_object() {
            for name in headers.keys() {
                assert!(
                    answer.header(name).is_some(),
                    "{method} {path} {status}: the declared header {name} is missing"
                );
            }
        }
    }

    /// The document's operation for `method` on the concrete `path`.
    fn operation(&self, method: &Method, path: &str) -> Option<&Value> {
        let segments: Vec<&str> = path.split('/').collect();
        let paths = self.openapi["paths"].as_object()?;
        let mut matches: Vec<(&String, &Value)> = paths
            .iter()
            .filter(|(template, _)| {
                let parts: Vec<&str> = template.split('/').collect();
                parts.len() == segments.len()
                    && parts
                        .iter()
                        .zip(&segments)
                        .all(|(p, s)| p == s || p.starts_with('{'))
            })
            .collect();
        // A literal segment wins over a parameter.
        matches.sort_by_key(|(template, _)| template.matches('{').count());
        let (_, item) = matches.first()?;
        item.get(method.as_str().to_lowercase())
    }
}
