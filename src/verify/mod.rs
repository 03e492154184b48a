//! Token verification, by concept:
//!
//! - [`settings`]: [`JwtSettings`], one JWT plan's settings, and their compile step;
//! - [`rules`]: [`ClaimRules`], the claim checks compiled from them, and [`ScopeMode`];
//! - [`jws`]: strict parsing of the compact JWS and its JSON, before any key is touched;
//! - [`key_source`]: [`KeySource`], where the keys come from, and the signature check.
//!
//! The order in which these run for a request is in [`crate::check`].

mod jws;
mod key_source;
mod rules;
mod settings;

pub(crate) use jws::{Jws, parse_jws};
pub use key_source::KeySource;
pub(crate) use key_source::{KeysAt, SignatureCheck, Verdicts};
pub use rules::ScopeMode;
pub(crate) use rules::{ClaimRules, TimeClaims};
pub use settings::JwtSettings;
