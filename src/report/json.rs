//! JSON: the plan itself, pretty-printed with a trailing newline. Its schema is `lapse schema plan`.

use crate::plan::Plan;

pub(super) fn render(plan: &Plan) -> String {
    // Serializing plain data structures cannot fail; an empty object is the safe fallback.
    let mut text = serde_json::to_string_pretty(plan).unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    text
}
