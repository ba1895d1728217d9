import type { ExpandedProposal } from "../api/types";
import { SECTIONS } from "../lib/sections";

export function ProposalView({ proposal }: { proposal: ExpandedProposal }) {
  return (
    <div className="proposal">
      {SECTIONS.filter((s) => s.name !== "title").map((section) => {
        const value = proposal[section.name];
        return (
          <section key={section.name} aria-labelledby={`proposal-${section.name}`}>
            <h3 id={`proposal-${section.name}`}>{section.title}</h3>
            {Array.isArray(value) ? (
              value.length ? (
                <ul>
                  {value.map((item, index) => (
                    <li key={index}>{item}</li>
                  ))}
                </ul>
              ) : (
                <p className="muted">None.</p>
              )
            ) : (
              <p className="prose">{value}</p>
            )}
          </section>
        );
      })}
    </div>
  );
}
