//! Reading back a report this project wrote: one place for the schema version rule every
//! report follows (a report written before the field existed is version 1; one newer than this
//! build reads is refused in one line naming the file).

use serde::de::DeserializeOwned;
use std::path::Path;

/// A report type with a `schema_version` field.
pub trait Versioned: DeserializeOwned {
    /// The version this build writes and reads.
    const SCHEMA: u32;
    /// What the report is, for the refusal ("sweep report").
    const KIND: &'static str;
    fn schema_version(&self) -> u32;
}

/// `#[serde(default = "harness::schema::v1")]` for reports written before the field existed.
pub fn v1() -> u32 {
    1
}

pub fn parse<T: Versioned>(text: &str) -> Result<T, String> {
    let r: T = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if r.schema_version() > T::SCHEMA {
        return Err(format!(
            "{} schema {} is newer than this build reads ({})",
            T::KIND,
            r.schema_version(),
            T::SCHEMA
        ));
    }
    Ok(r)
}

pub fn read<T: Versioned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}
