/**
 * The two DOM helpers every part of the sidebar builds with.
 */

/** Create an element with a class and optional text. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** Create a small button that runs `action` on click. */
export function button(
  label: string,
  title: string,
  action: () => void,
  className = ''
): HTMLButtonElement {
  const node = el(
    'button',
    `jp-Button jp-mod-styled jp-MLDeploy-button ${className}`.trim(),
    label
  );
  node.title = title;
  node.addEventListener('click', action);
  return node;
}
