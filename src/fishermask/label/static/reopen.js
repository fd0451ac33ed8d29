// The labeling page asked for without a valid token: a reload after the page took the token
// out of its address bar, or a URL without one. Open it again, once, with the token this tab
// was opened with (kept in this tab's sessionStorage by app.js; no cookie, so two tabs of one
// browser stay two people); when that token is refused too (the server was restarted with a
// new one), forget it and leave the line that says what to do.
"use strict";
(() => {
  const KEY = "fishermask-label-token";
  let token = null;
  try { token = sessionStorage.getItem(KEY); } catch (e) { /* storage disabled */ }
  const tried = new URLSearchParams(location.search).get("token");
  if (token && tried === null) {
    location.replace("/?token=" + encodeURIComponent(token));
  } else if (token && tried === token) {
    try { sessionStorage.removeItem(KEY); } catch (e) { /* storage disabled */ }
  }
})();
