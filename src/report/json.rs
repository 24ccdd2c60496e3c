//! JSON: the plan itself, pretty-printed with a trailing newline. Versioned by its own `format`
//! and `version` fields; its schema is `lapse schema plan`. `lapse report --format json` over a
//! saved plan gives the same bytes back.

use crate::plan::Plan;

pub(super) fn render(plan: &Plan) -> serde_json::Result<String> {
    let mut text = serde_json::to_string_pretty(plan)?;
    text.push('\n');
    Ok(text)
}
