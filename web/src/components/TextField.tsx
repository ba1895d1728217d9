// A labelled textarea with a live character counter against a server limit.

import { useId } from "react";
import { counterState } from "../lib/counter";

interface Props {
  label: string;
  value: string;
  onChange: (value: string) => void;
  limit: number | null;
  rows?: number;
  hint?: string;
  required?: boolean;
}

export function TextField({ label, value, onChange, limit, rows = 5, hint, required }: Props) {
  const id = useId();
  const counter = limit === null ? null : counterState(value, limit);
  const describedBy = [hint ? `${id}-hint` : "", counter ? `${id}-count` : ""]
    .filter(Boolean)
    .join(" ");
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {hint && (
        <p id={`${id}-hint`} className="hint">
          {hint}
        </p>
      )}
      <textarea
        id={id}
        value={value}
        rows={rows}
        required={required}
        aria-invalid={counter?.over || undefined}
        aria-describedby={describedBy || undefined}
        onChange={(event) => onChange(event.target.value)}
      />
      {counter && (
        <p id={`${id}-count`} className={counter.over ? "counter counter-over" : "counter"}>
          {counter.text}
        </p>
      )}
    </div>
  );
}
