//! The credentials this process handed a client (Qdrant API keys, URL user info, S3 secret
//! keys and session tokens): registered when a client is made, so that whatever prints text
//! for a person (the `-v` log) can hide them, whoever wrote the text.

use std::sync::Mutex;

/// What replaces a secret part of a URL or of a text.
pub const HIDDEN: &str = "***";

/// Secrets shorter than this are not looked for in texts: replacing them would hide ordinary
/// words and letters, and no real API key or password is this short.
pub const MIN_SECRET_LEN: usize = 4;

/// Strings that must never be printed, whatever logged them.
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Registers a secret (an API key, a URL password): [`hide_secrets`] masks it from now on.
pub fn add_secret(secret: &str) {
    // Short strings would mask ordinary words; no real key or password is this short.
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    if let Ok(mut secrets) = SECRETS.lock() {
        if !secrets.iter().any(|s| s == secret) {
            secrets.push(secret.to_string());
        }
    }
}

/// `text` with every registered secret replaced by `***`, in the order they were registered.
pub fn hide_secrets(text: &str) -> String {
    let mut out = text.to_string();
    if let Ok(secrets) = SECRETS.lock() {
        for secret in secrets.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), HIDDEN);
            }
        }
    }
    out
}
