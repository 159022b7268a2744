//! Indicators of compromise: IP addresses, URLs, domains and file hashes.
//!
//! Parsing an indicator validates it and brings it to one canonical text form
//! (`2001:DB8::1` → `2001:db8::1`, `Example.COM.` → `example.com`, hashes in
//! lower case), so that the same indicator is stored, filtered and blocked the
//! same way whatever its spelling. The rules hold for the canonical form, so
//! what is accepted parses again, unchanged, when the executor reads it back.

use std::fmt;
use std::net::IpAddr;

/// The kind of indicator an action is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndicatorKind {
    Ip,
    Url,
    Domain,
    FileHash,
}

impl IndicatorKind {
    /// The name of the parameter that carries this kind of indicator.
    pub const fn parameter_name(self) -> &'static str {
        match self {
            IndicatorKind::Ip => "ip",
            IndicatorKind::Url => "url",
            IndicatorKind::Domain => "domain",
            IndicatorKind::FileHash => "fileHash",
        }
    }
}

/// The algorithm of a file hash, told by its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    Md5,
    Sha1,
    Sha256,
}

impl HashAlgorithm {
    /// `md5`, `sha1` or `sha256`.
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlgorithm::Md5 => "md5",
            HashAlgorithm::Sha1 => "sha1",
            HashAlgorithm::Sha256 => "sha256",
        }
    }
}

/// A validated indicator in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Indicator {
    Ip(IpAddr),
    Url(String),
    Domain(String),
    FileHash(HashAlgorithm, String),
}

/// The longest URL accepted, as most browsers and proxies handle it.
pub(crate) const MAX_URL_LEN: usize = 2048;

impl Indicator {
    /// Parses `value` as an indicator of `kind`; the error says what is wrong.
    pub fn parse(kind: IndicatorKind, value: &str) -> Result<Indicator, String> {
        match kind {
            IndicatorKind::Ip => parse_ip(value),
            IndicatorKind::Url => parse_url(value),
            IndicatorKind::Domain => parse_domain(value).map(Indicator::Domain),
            IndicatorKind::FileHash => parse_hash(value),
        }
    }

    /// A short label of the precise kind: `ip`, `url`, `domain`, `md5`, `sha1`
    /// or `sha256`. Blocklist files are named after it.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Indicator::Ip(_) => "ip",
            Indicator::Url(_) => "url",
            Indicator::Domain(_) => "domain",
            Indicator::FileHash(algorithm, _) => algorithm.as_str(),
        }
    }
}

impl fmt::Display for Indicator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Indicator::Ip(ip) => write!(f, "{ip}"),
            Indicator::Url(text) | Indicator::Domain(text) | Indicator::FileHash(_, text) => {
                f.write_str(text)
            }
        }
    }
}

fn parse_ip(value: &str) -> Result<Indicator, String> {
    let parsed: IpAddr = value
        .parse()
        .map_err(|_| format!("'{}' is not an IPv4 or IPv6 address", shorten(value)))?;
    // An IPv4-mapped IPv6 address is the IPv4 address: store it as one, and
    // judge it as one (`::ffff:0.0.0.0` is `0.0.0.0`).
    let ip = match parsed {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(parsed),
        v4 => v4,
    };
    if ip.is_unspecified() {
        return Err(format!(
            "{parsed} is the unspecified address, which matches nothing"
        ));
    }
    Ok(Indicator::Ip(ip))
}

fn parse_url(value: &str) -> Result<Indicator, String> {
    if value.len() > MAX_URL_LEN {
        return Err(format!("a URL is at most {MAX_URL_LEN} characters"));
    }
    let url = url::Url::parse(value)
        .map_err(|err| format!("'{}' is not an absolute URL: {err}", shorten(value)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "a URL must be http or https, not '{}'",
            url.scheme()
        ));
    }
    if url.host().is_none() {
        return Err("a URL must name a host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a URL must not carry credentials".to_owned());
    }
    // Percent-encoding and punycode can lengthen it: the stored form counts.
    let canonical = url.to_string();
    if canonical.len() > MAX_URL_LEN {
        return Err(format!(
            "a URL is at most {MAX_URL_LEN} characters once percent-encoded"
        ));
    }
    Ok(Indicator::Url(canonical))
}

/// Validates a domain name and returns it in canonical form: lower case,
/// internationalised labels in punycode, no trailing dot.
pub(crate) fn parse_domain(value: &str) -> Result<String, String> {
    let trimmed = value.strip_suffix('.').unwrap_or(value);
    let invalid = || format!("'{}' is not a domain name", shorten(value));
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(invalid());
    }
    let host = match url::Host::parse(trimmed).map_err(|_| invalid())? {
        url::Host::Domain(domain) => domain,
        url::Host::Ipv4(_) | url::Host::Ipv6(_) => {
            return Err(format!(
                "'{}' is an IP address: use an IP action",
                shorten(value)
            ));
        }
    };
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 2 {
        return Err(format!(
            "'{}' has a single label: name a domain such as example.com",
            shorten(value)
        ));
    }
    let label_ok = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if host.len() > 253 || !labels.iter().all(label_ok) {
        return Err(invalid());
    }
    Ok(host)
}

fn parse_hash(value: &str) -> Result<Indicator, String> {
    let algorithm = match value.len() {
        32 => HashAlgorithm::Md5,
        40 => HashAlgorithm::Sha1,
        64 => HashAlgorithm::Sha256,
        _ => {
            return Err(
                "a file hash is 32 (MD5), 40 (SHA-1) or 64 (SHA-256) hex digits".to_owned(),
            );
        }
    };
    if !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("a file hash holds only hex digits".to_owned());
    }
    Ok(Indicator::FileHash(algorithm, value.to_ascii_lowercase()))
}

/// The start of a value, for error messages that should not echo kilobytes.
pub(crate) fn shorten(value: &str) -> String {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    fn canonical(kind: IndicatorKind, value: &str) -> String {
        Indicator::parse(kind, value).unwrap().to_string()
    }

    #[test]
    fn ip_addresses_of_both_families_are_accepted_in_canonical_form() {
        assert_eq!(canonical(IndicatorKind::Ip, "203.0.113.7"), "203.0.113.7");
        assert_eq!(canonical(IndicatorKind::Ip, "2001:DB8:0::1"), "2001:db8::1");
        assert_eq!(
            canonical(IndicatorKind::Ip, "::ffff:192.0.2.1"),
            "192.0.2.1"
        );
    }

    #[test]
    fn malformed_ip_addresses_are_refused() {
        for bad in [
            "",
            "1.2.3",
            "1.2.3.256",
            "01.2.3.4",
            "1.2.3.4/24",
            "0.0.0.0",
            "::",
            "host",
        ] {
            assert!(Indicator::parse(IndicatorKind::Ip, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_must_be_absolute_http_or_https() {
        assert_eq!(
            canonical(IndicatorKind::Url, "HTTPS://Evil.example/a?b=c"),
            "https://evil.example/a?b=c"
        );
        for bad in [
            "evil.example/a",
            "ftp://evil.example/",
            "javascript:alert(1)",
            "http://u:p@x.example/",
        ] {
            assert!(Indicator::parse(IndicatorKind::Url, bad).is_err(), "{bad}");
        }
        let long = format!("https://x.example/{}", "a".repeat(MAX_URL_LEN));
        assert!(Indicator::parse(IndicatorKind::Url, &long).is_err());
    }

    #[test]
    fn domains_are_lowercased_and_checked_label_by_label() {
        assert_eq!(
            canonical(IndicatorKind::Domain, "Evil.Example.COM."),
            "evil.example.com"
        );
        assert_eq!(
            canonical(IndicatorKind::Domain, "bücher.example"),
            "xn--bcher-kva.example"
        );
        for bad in [
            "localhost",
            "-a.example",
            "a..example",
            "1.2.3.4",
            "a b.example",
            "",
            ".",
        ] {
            assert!(
                Indicator::parse(IndicatorKind::Domain, bad).is_err(),
                "{bad}"
            );
        }
        let long_label = format!("{}.example", "a".repeat(64));
        assert!(Indicator::parse(IndicatorKind::Domain, &long_label).is_err());
    }

    #[test]
    fn file_hashes_are_told_apart_by_length() {
        let md5 = "D41D8CD98F00B204E9800998ECF8427E";
        let parsed = Indicator::parse(IndicatorKind::FileHash, md5).unwrap();
        assert_eq!(parsed.label(), "md5");
        assert_eq!(parsed.to_string(), md5.to_ascii_lowercase());
        assert_eq!(
            Indicator::parse(IndicatorKind::FileHash, &"a".repeat(40))
                .unwrap()
                .label(),
            "sha1"
        );
        assert_eq!(
            Indicator::parse(IndicatorKind::FileHash, &"b".repeat(64))
                .unwrap()
                .label(),
            "sha256"
        );
        assert!(Indicator::parse(IndicatorKind::FileHash, &"g".repeat(64)).is_err());
        assert!(Indicator::parse(IndicatorKind::FileHash, &"a".repeat(33)).is_err());
    }

    #[test]
    fn special_addresses_are_judged_after_unwrapping_ipv4_mapped_forms() {
        for bad in ["::ffff:0.0.0.0", "::ffff:0:0", "0:0:0:0:0:ffff:0.0.0.0"] {
            assert!(Indicator::parse(IndicatorKind::Ip, bad).is_err(), "{bad}");
        }
        let growing = format!("https://x.example/{}", "ü".repeat(1000));
        assert!(growing.len() <= MAX_URL_LEN);
        assert!(Indicator::parse(IndicatorKind::Url, &growing).is_err());
    }

    fn any_indicator() -> impl Strategy<Value = (IndicatorKind, String)> {
        let ip = |v: String| (IndicatorKind::Ip, v);
        prop_oneof![
            any::<Ipv4Addr>().prop_map(move |v4| ip(v4.to_string())),
            any::<Ipv4Addr>().prop_map(move |v4| ip(format!("::ffff:{v4}"))),
            any::<Ipv4Addr>().prop_map(move |v4| ip(format!("::{v4}"))),
            any::<Ipv6Addr>().prop_map(move |v6| ip(v6.to_string())),
            "(0|1|255)\\.(0|1|255)\\.(0|1|255)\\.(0|1|255)|::(ffff:)?[0-9.:a-f]{0,12}"
                .prop_map(ip),
            "(https?|HTTP)://([a-zA-Zü0-9-]{1,12}\\.){1,3}[a-z]{2,5}(:[0-9]{1,5})?(/[^#?]{0,700})?(\\?.{0,300})?(#.{0,100})?"
                .prop_map(|v| (IndicatorKind::Url, v)),
            "([a-zA-Z0-9ü_-]{1,70}\\.){1,5}[a-zA-Z0-9ü-]{1,70}\\.?"
                .prop_map(|v| (IndicatorKind::Domain, v)),
            "[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64}"
                .prop_map(|v| (IndicatorKind::FileHash, v)),
        ]
    }

    proptest! {
        /// What is accepted parses again to itself: the executor reads back
        /// the canonical text and must find the same indicator.
        #[test]
        fn the_canonical_form_parses_to_itself((kind, value) in any_indicator()) {
            if let Ok(indicator) = Indicator::parse(kind, &value) {
                let again = Indicator::parse(kind, &indicator.to_string());
                prop_assert_eq!(again, Ok(indicator), "from {}", value);
            }
        }
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let shown = shorten(&"x".repeat(1000));
        assert!(shown.chars().count() <= 65);
    }
}
