// The sign-in form: POST /api/login, then back to the page that asked for it.
import { api } from "./api.js";

const form = document.getElementById("login");
const error = document.getElementById("login-error");

/** Only a path on this server, so a crafted ?next= cannot send the user elsewhere. */
function safeNext(next) {
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/create-daytona";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  try {
    await api("/api/login", { method: "POST", body: { password: form.password.value } });
    location.assign(safeNext(form.dataset.next));
  } catch (err) {
    error.textContent = err.message;
    error.hidden = false;
    form.password.select();
  }
});
