import { useApp } from "./context";
import { Link, useLocation } from "../router/history";
import { paths } from "../router/routes";
import { ThemeToggle } from "./ThemeToggle";

export function Header() {
  const { tenant, signOut } = useApp();
  const { pathname } = useLocation();
  const current = (active: boolean) => (active ? ("page" as const) : undefined);
  const onRuns = pathname === "/" || (pathname.startsWith("/runs") && pathname !== "/runs/new");
  return (
    <header className="site-header">
      <div className="brand">
        <Link to="/" className="brand-name">
          Consensus Engine
        </Link>
        <span className="tenant">Signed in as {tenant}</span>
      </div>
      <nav aria-label="Main">
        <ul>
          <li>
            <Link to={paths.runs()} aria-current={current(onRuns)}>
              Runs
            </Link>
          </li>
          <li>
            <Link to={paths.newRun()} aria-current={current(pathname === "/runs/new")}>
              New run
            </Link>
          </li>
          <li>
            <Link to={paths.compare()} aria-current={current(pathname === "/compare")}>
              Compare
            </Link>
          </li>
        </ul>
      </nav>
      <div className="header-actions">
        <ThemeToggle />
        <button type="button" className="button-secondary" onClick={() => signOut()}>
          Sign out
        </button>
      </div>
    </header>
  );
}
