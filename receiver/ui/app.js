// selfheal-receiver's page: keep the content current while it is open, and send a person's
// approve / reject / cancel with the token they entered once (sessionStorage, this tab only).
"use strict";
(function () {
  const key = "selfheal-token";
  const message = (text) => { document.getElementById("message").textContent = text; };
  const token = () => sessionStorage.getItem(key);
  function showWho() {
    const who = document.getElementById("who");
    if (who) who.textContent = token() ? " token set" : "";
    document.querySelectorAll("button.act").forEach((b) => { b.disabled = !token(); });
  }
  document.getElementById("signin").addEventListener("submit", (event) => {
    event.preventDefault();
    const field = document.getElementById("token");
    if (field.value) sessionStorage.setItem(key, field.value); else sessionStorage.removeItem(key);
    field.value = "";
    showWho();
  });
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button.act");
    if (!button) return;
    const { action, id } = button.dataset;
    const answer = await fetch(`/api/v1/remediations/${id}/${action}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token()}` },
    });
    const body = await answer.json().catch(() => ({}));
    message(answer.ok ? `${action}: done` : `${action}: ${answer.status} ${body.error || ""} ${body.detail || ""}`);
    refresh();
  });
  async function refresh() {
    const answer = await fetch(location.href, { headers: { Accept: "text/html" } });
    if (!answer.ok) return;
    const page = new DOMParser().parseFromString(await answer.text(), "text/html");
    const fresh = page.getElementById("live");
    if (fresh) document.getElementById("live").replaceWith(fresh);
    showWho();
  }
  const seconds = Number(document.getElementById("live").dataset.refresh || 0);
  if (seconds > 0) setInterval(refresh, seconds * 1000);
  showWho();
})();
