// The app's routes, matched from a path; pure so it is unit-tested.

export type Route =
  | { name: "runs" }
  | { name: "new" }
  | { name: "run"; id: string }
  | { name: "revise"; id: string }
  | { name: "compare"; a: string; b: string }
  | { name: "notFound" };

const RUN = /^\/runs\/([^/]+)\/?$/;
const REVISE = /^\/runs\/([^/]+)\/revise\/?$/;

export function matchRoute(pathname: string, search = ""): Route {
  const path = pathname.replace(/\/+$/, "") || "/";
  if (path === "/" || path === "/runs") return { name: "runs" };
  if (path === "/runs/new") return { name: "new" };
  if (path === "/compare") {
    const params = new URLSearchParams(search);
    return { name: "compare", a: params.get("a") ?? "", b: params.get("b") ?? "" };
  }
  const revise = REVISE.exec(path);
  if (revise?.[1]) return { name: "revise", id: decodeURIComponent(revise[1]) };
  const run = RUN.exec(path);
  if (run?.[1]) return { name: "run", id: decodeURIComponent(run[1]) };
  return { name: "notFound" };
}

export const paths = {
  runs: (search = "") => `/${search}`,
  newRun: () => "/runs/new",
  run: (id: string) => `/runs/${encodeURIComponent(id)}`,
  revise: (id: string) => `/runs/${encodeURIComponent(id)}/revise`,
  compare: (a = "", b = "") => {
    const params = new URLSearchParams();
    if (a) params.set("a", a);
    if (b) params.set("b", b);
    const text = params.toString();
    return text ? `/compare?${text}` : "/compare";
  },
};
