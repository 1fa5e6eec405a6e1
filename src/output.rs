//! How a dry run prints its documents (`--output`): named here, where both the command
//! line (`cli`) and the dry run's printer (`broker/printer.rs`) see it.

/// How a dry run prints documents (`--output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputFormat {
    /// One JSON document per line.
    Json,
    /// An aligned table sorted by cpu_pct.
    Table,
}
