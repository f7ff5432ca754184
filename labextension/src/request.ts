/**
 * How a request body is shown in the sidebar's editor: the same layout as the `%mldeploy` panel's Test tab
 * (`request_text` in jupyter_mldeploy/notebook/widgets/tester.py), with the floats of a prefilled sample
 * rounded so a row of features reads at a glance.
 */

/**
 * Significant digits kept for the floats of a prefilled sample. A registered sample holds the full 17
 * digits of a float64 (`0.0380759064334241`); four are plenty to read and to try a request, and change a
 * prediction by far less than its own error.
 */
export const SAMPLE_SIGNIFICANT_DIGITS = 4;

/**
 * Round every non-integer number in `value` to `digits` significant digits (integers, strings, booleans
 * and null are kept as they are).
 *
 * @param value - A decoded JSON value.
 * @param digits - Significant digits to keep (1-21, as `Number.toPrecision` takes).
 * @returns A copy of `value` with rounded floats.
 */
export function roundFloats(
  value: unknown,
  digits = SAMPLE_SIGNIFICANT_DIGITS
): unknown {
  if (typeof value === 'number') {
    return Number.isInteger(value) || !Number.isFinite(value)
      ? value
      : Number(value.toPrecision(digits));
  }
  if (Array.isArray(value)) {
    return value.map(item => roundFloats(item, digits));
  }
  if (value !== null && typeof value === 'object') {
    const rounded: { [key: string]: unknown } = {};
    for (const [key, item] of Object.entries(value)) {
      rounded[key] = roundFloats(item, digits);
    }
    return rounded;
  }
  return value;
}

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
