// Live updates for the inbox pages: when the server says a conversation changed, refetch this
// page and replace only its live region (#queue, or #conversation when it is that conversation).
// Nothing outside the region is touched, so a reply being typed stays. Without this script the
// pages work the same, with a reload. EventSource reconnects by itself when the stream drops.
(function () {
  "use strict";
  if (!window.EventSource || !document.querySelector("[data-live-region]")) {
    return;
  }

  // The region this page keeps live, and whether a change of conversation `id` concerns it.
  function region() {
    var queue = document.querySelector("#queue[data-live-region]");
    if (queue) {
      return { el: queue, wants: function () { return true; } };
    }
    var conv = document.querySelector("#conversation[data-live-region][data-conversation-id]");
    if (conv) {
      return {
        el: conv,
        wants: function (id) { return String(id) === conv.getAttribute("data-conversation-id"); },
      };
    }
    return null;
  }

  // At most one refetch in flight and one more queued: a burst of changes costs two fetches.
  var inFlight = false;
  var again = false;

  function refresh() {
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = true;
    again = false;
    fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (resp) {
        if (!resp.ok || resp.redirected) {
          return null; // signed out meanwhile, or gone: leave the page as it is
        }
        return resp.text();
      })
      .then(function (html) {
        if (html === null) {
          return;
        }
        var current = region();
        if (!current) {
          return;
        }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(current.el.id);
        if (fresh) {
          current.el.replaceChildren.apply(current.el, Array.prototype.slice.call(fresh.childNodes));
          document.dispatchEvent(new CustomEvent("live:updated", { detail: { region: current.el.id } }));
        }
      })
      .catch(function () { /* the next change (or a reload) brings the page up to date */ })
      .then(function () {
        inFlight = false;
        if (again) {
          refresh();
        }
      });
  }

  var source = new EventSource("/events");
  source.addEventListener("conversation", function (event) {
    var current = region();
    var change;
    try {
      change = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    if (current && current.wants(change.id)) {
      refresh();
    }
  });
  source.addEventListener("resync", function () {
    if (region()) {
      refresh();
    }
  });
})();
