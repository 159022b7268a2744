//! Parsed documents kept by their text. Clients send the same few documents
//! over and over (a dashboard's list, an action's lookup), with what changes
//! in variables, and parsing one took a tenth of the gateway's CPU on a
//! lookup. A document that parses is kept, up to a number of documents and
//! a total of text; the least recently used goes first. A document is the
//! caller's own text and carries no data of anyone's, so one kept copy
//! serves every tenant; what depends on the caller (limits with its
//! variables, validation, execution) still runs on every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::Request;
use async_graphql::parser::types::ExecutableDocument;

/// Most documents kept.
pub(crate) const MAX_DOCUMENTS: usize = 256;

/// Most text kept, in bytes, all documents together: a kept document takes
/// several times its text in memory, so this bounds what parsing can hold.
pub(crate) const MAX_TEXT_BYTES: usize = 512 * 1024;

/// The kept documents: shared by every request of the gateway.
pub(crate) struct ParsedDocuments {
    kept: Mutex<Kept>,
    max_documents: usize,
    max_text_bytes: usize,
}

struct Kept {
    by_text: HashMap<Arc<str>, Entry>,
    /// The length of every kept text together.
    text_bytes: usize,
    /// Counts uses; an entry's `used` is the count at its last use.
    clock: u64,
}

struct Entry {
    document: Arc<ExecutableDocument>,
    used: u64,
}

impl ParsedDocuments {
    pub(crate) fn new(max_documents: usize, max_text_bytes: usize) -> ParsedDocuments {
        ParsedDocuments {
            kept: Mutex::new(Kept {
                by_text: HashMap::new(),
                text_bytes: 0,
                clock: 0,
            }),
            max_documents,
            max_text_bytes,
        }
    }

    /// Gives `request` its parsed document: the kept one of the same text,
    /// or, the first time, parsed and kept. A text that does not parse is
    /// left alone (the request's own parse reports the error) and kept
    /// nothing. The caller has already bounded what the text can make the
    /// parser recurse into.
    pub(crate) fn parse_into(&self, request: &mut Request) {
        if let Some(document) = self.kept(&request.query) {
            request.set_parsed_query(ExecutableDocument::clone(&document));
            return;
        }
        let Ok(document) = request.parsed_query() else {
            return;
        };
        let document = Arc::new(document.clone());
        self.keep(&request.query, document);
    }

    /// The kept document of `text`, if any.
    pub(crate) fn kept(&self, text: &str) -> Option<Arc<ExecutableDocument>> {
        let mut kept = self.lock();
        kept.clock += 1;
        let now = kept.clock;
        let entry = kept.by_text.get_mut(text)?;
        entry.used = now;
        Some(entry.document.clone())
    }

    fn keep(&self, text: &str, document: Arc<ExecutableDocument>) {
        if text.len() > self.max_text_bytes || self.max_documents == 0 {
            return;
        }
        let mut kept = self.lock();
        if kept.by_text.contains_key(text) {
            return;
        }
        while kept.by_text.len() >= self.max_documents
            || kept.text_bytes + text.len() > self.max_text_bytes
        {
            kept.forget_least_recently_used();
        }
        kept.clock += 1;
        let used = kept.clock;
        kept.text_bytes += text.len();
        kept.by_text.insert(text.into(), Entry { document, used });
    }

    /// How many documents are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_text.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // What the lock guards is a cache, whole after every step.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for ParsedDocuments {
    fn default() -> ParsedDocuments {
        ParsedDocuments::new(MAX_DOCUMENTS, MAX_TEXT_BYTES)
    }
}

impl Kept {
    fn forget_least_recently_used(&mut self) {
        let oldest = self
            .by_text
            .iter()
            .min_by_key(|(_, entry)| entry.used)
            .map(|(text, _)| text.clone());
        if let Some(text) = oldest {
            self.by_text.remove(&text);
            self.text_bytes -= text.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> Request {
        Request::new(text)
    }

    #[test]
    fn a_document_sent_again_is_the_one_parsed_the_first_time() {
        let documents = ParsedDocuments::default();
        let text = "query One($id: ID!) { action(id: $id) { id status } }";
        let mut first = request(text);
        documents.parse_into(&mut first);
        let kept = documents.kept(text).expect("kept after its first parse");

        let mut second = request(text);
        documents.parse_into(&mut second);
        let parsed = second.parsed_query().expect("parses");
        assert_eq!(format!("{parsed:?}"), format!("{kept:?}"));
        assert_eq!(
            format!("{parsed:?}"),
            format!("{:?}", async_graphql::parser::parse_query(text).unwrap())
        );
        assert_eq!(documents.len(), 1);
    }

    #[test]
    fn a_text_that_does_not_parse_is_not_kept_and_still_fails() {
        let documents = ParsedDocuments::default();
        let mut bad = request("{ action(id: ");
        documents.parse_into(&mut bad);
        assert_eq!(documents.len(), 0);
        assert!(bad.parsed_query().is_err());
    }

    #[test]
    fn the_least_recently_used_document_goes_first() {
        let documents = ParsedDocuments::new(2, MAX_TEXT_BYTES);
        let (a, b, c) = ("{ a }", "{ b }", "{ c }");
        documents.parse_into(&mut request(a));
        documents.parse_into(&mut request(b));
        // `a` used again, so `b` is the oldest when `c` arrives.
        documents.parse_into(&mut request(a));
        documents.parse_into(&mut request(c));
        assert!(documents.kept(a).is_some());
        assert!(documents.kept(b).is_none());
        assert!(documents.kept(c).is_some());
        assert_eq!(documents.len(), 2);
    }

    #[test]
    fn kept_text_stays_within_its_bytes() {
        let documents = ParsedDocuments::new(100, 40);
        let texts: Vec<String> = (0..10).map(|i| format!("{{ field{i} }}")).collect();
        for text in &texts {
            documents.parse_into(&mut request(text));
        }
        let kept_bytes: usize = texts
            .iter()
            .filter(|text| documents.kept(text).is_some())
            .map(|text| text.len())
            .sum();
        assert!(kept_bytes <= 40, "{kept_bytes} bytes kept");
        assert!(documents.kept(texts.last().unwrap()).is_some());
        // A text longer than all the room is parsed but not kept.
        let long = format!("{{ {} }}", "f ".repeat(30));
        let mut request = request(&long);
        documents.parse_into(&mut request);
        assert!(request.parsed_query().is_ok());
        assert!(documents.kept(&long).is_none());
    }
}
