//! Renderers: each turns a [`Plan`] into one output format. The engine knows no formats.

mod json;
mod table;

use crate::plan::Plan;

pub use table::TableOptions;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Human-readable table (the terminal default).
    Table,
    /// The plan as versioned JSON.
    Json,
}

/// Renders a plan.
#[must_use]
pub fn render(plan: &Plan, format: Format, options: &TableOptions) -> String {
    match format {
        Format::Table => table::render(plan, options),
        Format::Json => json::render(plan),
    }
}
