// The labeling page asked for without a valid token: a reload after the page took the token
// out of its address bar, or a URL without one. Open it again, once, with the token this tab
// was opened with (kept in this tab's sessionStorage by app.js; no cookie, so two tabs of one
// browser stay two people); when that token is refused too (the server was restarted with a
// new one), forget it and say so. A token refused here is taken out of the address bar.
"use strict";
(() => {
  const KEY = "fishermask-label-token";
  let token = null;
  try { token = sessionStorage.getItem(KEY); } catch (e) { /* storage disabled */ }
  const tried = new URLSearchParams(location.search).get("token");
  if (token && tried === null) {
    location.replace("/?token=" + encodeURIComponent(token) + location.hash);  // #labeled
  } else if (token && tried === token) {
    try { sessionStorage.removeItem(KEY); } catch (e) { /* storage disabled */ }
    document.getElementById("why").textContent = "the labeling server no longer accepts this "
      + "tab's access token: it was probably restarted with a new token; if you serve it, open "
      + "the URL that `fishermask label serve` printed; an annotator: ask the owner for your "
      + "new link";
  }
  // a token refused here stays out of the address bar (and so of bookmarks and links copied
  // from it), as the page takes out one it accepts
  if (tried !== null) {
    history.replaceState(history.state, "", location.pathname + location.hash);
  }
})();
