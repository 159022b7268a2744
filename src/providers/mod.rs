//! Providers: what carries an action out (a blocklist file, a webhook,
//! Microsoft Defender for Endpoint) and lifts it again on cancel.

pub mod config;
