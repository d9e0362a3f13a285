//! Sandlot SDK (placeholder until the SDK issue lands).
pub use sandlot_protocol as protocol;
