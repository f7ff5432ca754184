/**
 * How a request body is shown in the sidebar's editor: the same layout as the `%mldeploy` panel's Test tab
 * (`request_text` in jupyter_mldeploy/notebook/widgets/tester.py). The prefilled example comes rounded from
 * the server (`example_payload(..., rounded=True)` in jupyter_mldeploy/actions/endpoint.py), the one
 * definition both faces use.
 */

/** JSON on one line with a space after each `,` and `:`, as Python's `json.dumps` writes it. */
export function compactJSON(value: unknown): string {
  if (Array.isArray(value)) {
    return `[${value.map(compactJSON).join(', ')}]`;
  }
  if (value !== null && typeof value === 'object') {
    const items = Object.entries(value).map(
      ([key, item]) => `${JSON.stringify(key)}: ${compactJSON(item)}`
    );
    return `{${items.join(', ')}}`;
  }
  // undefined (never in decoded JSON) would otherwise vanish from the text.
  return JSON.stringify(value) ?? 'null';
}

/**
 * The editor's text for a request body: an object gets one top-level key per line, indented by two spaces,
 * each value compact (so a row of features stays one line); anything else is compact JSON.
 *
 * @param value - A decoded JSON value.
 * @returns The text to put in the editor; `JSON.parse` of it equals `value`.
 */
export function requestText(value: unknown): string {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value);
    if (entries.length > 0) {
      const lines = entries.map(
        ([key, item]) => `  ${JSON.stringify(key)}: ${compactJSON(item)}`
      );
      return `{\n${lines.join(',\n')}\n}`;
    }
  }
  return compactJSON(value);
}
