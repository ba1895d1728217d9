// The page for the current path; focus moves to its heading when the route changes.

import { useEffect, useRef } from "react";
import { useLocation, Link } from "../router/history";
import { matchRoute } from "../router/routes";
import { RunsList } from "../pages/RunsList";
import { NewRun } from "../pages/NewRun";
import { RunPage } from "../pages/RunPage";
import { Revise } from "../pages/Revise";
import { Compare } from "../pages/Compare";

export function Page() {
  const { pathname, search } = useLocation();
  const route = matchRoute(pathname, search);
  const first = useRef(true);

  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    // Screen readers hear the new page; keyboard users start from its top.
    const heading = document.querySelector<HTMLElement>("main h1");
    heading?.focus();
  }, [pathname]);

  switch (route.name) {
    case "runs":
      return <RunsList search={search} />;
    case "new":
      return <NewRun />;
    case "run":
      return <RunPage key={route.id} id={route.id} />;
    case "revise":
      return <Revise key={route.id} id={route.id} />;
    case "compare":
      return <Compare a={route.a} b={route.b} />;
    case "notFound":
      return (
        <>
          <h1 tabIndex={-1}>Page not found</h1>
          <p>
            <Link to="/">Go to the runs list</Link>
          </p>
        </>
      );
  }
}
