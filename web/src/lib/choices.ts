// Persona checklists (new run, revision): what is chosen after one box changes.

/** `chosen` with `id` turned on or off, in the order of `all` (the persona set's order). */
export function toggledChoice(
  all: readonly { id: string }[],
  chosen: readonly string[],
  id: string,
  on: boolean,
): string[] {
  const next = new Set(chosen);
  if (on) next.add(id);
  else next.delete(id);
  return all.map((item) => item.id).filter((item) => next.has(item));
}
