//! The action catalog: which actions exist and which parameters they take.
//!
//! Names follow Microsoft Graph's `securityAction` (`BlockIp` in its docs) and are
//! matched case-insensitively; the stored and returned form is the canonical
//! camelCase one (`blockIp`).

use super::indicator::IndicatorKind;

/// What an action does to its indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Deny traffic to or from the indicator.
    Block,
    /// Explicitly allow the indicator (an exception to other blocks).
    Allow,
}

impl Verdict {
    /// `blocked` / `allowed`, as used in blocklist file names.
    pub(crate) fn past_tense(self) -> &'static str {
        match self {
            Verdict::Block => "blocked",
            Verdict::Allow => "allowed",
        }
    }
}

/// The value a parameter holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterKind {
    /// The indicator the action is about.
    Indicator(IndicatorKind),
    /// An RFC 3339 date-time in the future, after which the effect lapses.
    ExpirationDateTime,
}

/// One parameter an action takes.
#[derive(Debug, Clone, Copy)]
pub struct ParameterDefinition {
    /// Canonical name, e.g. `ip` or `expirationDateTime`.
    pub name: &'static str,
    pub kind: ParameterKind,
    pub required: bool,
    pub description: &'static str,
}

/// One action of the catalog.
#[derive(Debug)]
pub struct ActionDefinition {
    /// Canonical name, e.g. `blockIp`.
    pub name: &'static str,
    pub verdict: Verdict,
    /// The kind of indicator the action is about.
    pub indicator: IndicatorKind,
    pub description: &'static str,
    pub parameters: [ParameterDefinition; 2],
}

impl ActionDefinition {
    /// The parameter with this name, matched case-insensitively.
    pub(crate) fn parameter(&self, name: &str) -> Option<&ParameterDefinition> {
        self.parameters
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The required parameter naming the indicator (`ip`, `url`, …).
    pub fn indicator_parameter(&self) -> &ParameterDefinition {
        &self.parameters[0]
    }
}

const EXPIRATION: ParameterDefinition = ParameterDefinition {
    name: "expirationDateTime",
    kind: ParameterKind::ExpirationDateTime,
    required: false,
    description: "When the effect lapses (RFC 3339, in the future). Without it the effect lasts until the action is canceled.",
};

const fn indicator(kind: IndicatorKind, description: &'static str) -> ParameterDefinition {
    ParameterDefinition {
        name: kind.parameter_name(),
        kind: ParameterKind::Indicator(kind),
        required: true,
        description,
    }
}

const IP: ParameterDefinition = indicator(IndicatorKind::Ip, "An IPv4 or IPv6 address.");
const URL: ParameterDefinition = indicator(IndicatorKind::Url, "An absolute http or https URL.");
const DOMAIN: ParameterDefinition =
    indicator(IndicatorKind::Domain, "A domain name, e.g. example.com.");
const FILE_HASH: ParameterDefinition = indicator(
    IndicatorKind::FileHash,
    "A file hash in hex: MD5 (32), SHA-1 (40) or SHA-256 (64 digits).",
);

/// Every action the gateway knows.
pub static CATALOG: [ActionDefinition; 8] = [
    ActionDefinition {
        name: "blockIp",
        verdict: Verdict::Block,
        indicator: IndicatorKind::Ip,
        description: "Block traffic to and from an IP address.",
        parameters: [IP, EXPIRATION],
    },
    ActionDefinition {
        name: "blockUrl",
        verdict: Verdict::Block,
        indicator: IndicatorKind::Url,
        description: "Block access to a URL.",
        parameters: [URL, EXPIRATION],
    },
    ActionDefinition {
        name: "blockDomain",
        verdict: Verdict::Block,
        indicator: IndicatorKind::Domain,
        description: "Block resolution of and access to a domain.",
        parameters: [DOMAIN, EXPIRATION],
    },
    ActionDefinition {
        name: "blockFile",
        verdict: Verdict::Block,
        indicator: IndicatorKind::FileHash,
        description: "Block execution of a file, by hash.",
        parameters: [FILE_HASH, EXPIRATION],
    },
    ActionDefinition {
        name: "allowIp",
        verdict: Verdict::Allow,
        indicator: IndicatorKind::Ip,
        description: "Allow an IP address, as an exception to blocks.",
        parameters: [IP, EXPIRATION],
    },
    ActionDefinition {
        name: "allowUrl",
        verdict: Verdict::Allow,
        indicator: IndicatorKind::Url,
        description: "Allow a URL, as an exception to blocks.",
        parameters: [URL, EXPIRATION],
    },
    ActionDefinition {
        name: "allowDomain",
        verdict: Verdict::Allow,
        indicator: IndicatorKind::Domain,
        description: "Allow a domain, as an exception to blocks.",
        parameters: [DOMAIN, EXPIRATION],
    },
    ActionDefinition {
        name: "allowFile",
        verdict: Verdict::Allow,
        indicator: IndicatorKind::FileHash,
        description: "Allow a file, by hash, as an exception to blocks.",
        parameters: [FILE_HASH, EXPIRATION],
    },
];

/// The action with this name, matched case-insensitively.
pub(crate) fn find_action(name: &str) -> Option<&'static ActionDefinition> {
    CATALOG.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_case_insensitively_and_come_back_canonical() {
        assert_eq!(find_action("BlockIp").map(|a| a.name), Some("blockIp"));
        assert_eq!(
            find_action("BLOCKDOMAIN").map(|a| a.name),
            Some("blockDomain")
        );
        assert!(find_action("blockIpv4").is_none());
    }

    #[test]
    fn parameters_match_case_insensitively() {
        let block_ip = find_action("blockIp").unwrap();
        assert_eq!(block_ip.parameter("IP").map(|p| p.name), Some("ip"));
        assert_eq!(
            block_ip.parameter("EXPIRATIONDATETIME").map(|p| p.name),
            Some("expirationDateTime")
        );
        assert!(block_ip.parameter("url").is_none());
    }

    #[test]
    fn every_action_requires_exactly_its_indicator() {
        for action in &CATALOG {
            let required: Vec<_> = action.parameters.iter().filter(|p| p.required).collect();
            assert_eq!(required.len(), 1, "{}", action.name);
            assert_eq!(required[0].kind, ParameterKind::Indicator(action.indicator));
        }
    }
}
