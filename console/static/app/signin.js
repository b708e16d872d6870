import { Offline, Problem, postJson, setAccess } from "./api.js";
import { alertBox, fill, h } from "./dom.js";

// Sign-in for someone without a (fresh) link: a code mailed to the participant's address.
export function render(view, app, message, done) {
  const note = h("div");
  const email = h("input", { id: "email", type: "email", name: "email", autocomplete: "email", required: true });
  const codeForm = h("form", { hidden: true });
  const code = h("input", { id: "code", name: "code", inputmode: "numeric", autocomplete: "one-time-code",
                            pattern: "[0-9]{6}", maxlength: 6, required: true });
  const failed = (error) => note.replaceChildren(alertBox(
    error instanceof Offline ? "No connection: try again when you are online." : error.message));
  const emailForm = h("form", { onsubmit: async (event) => {
      event.preventDefault();
      try {
        await postJson("/v1/auth/email-codes", { program_id: app.programId, email: email.value.trim() });
        note.replaceChildren(h("p", { role: "status" },
          "If that address belongs to this program, a 6-digit code is on its way. It works for 10 minutes."));
        codeForm.hidden = false;
        code.focus();
      } catch (error) {
        failed(error);
      }
    } },
    h("label", { for: "email" }, "Email"), email,
    h("button", { type: "submit", class: "primary" }, "Email me a code"));
  codeForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const pair = await postJson("/v1/auth/email-codes/verify",
        { program_id: app.programId, email: email.value.trim(), code: code.value.trim() });
      setAccess(pair.access_token, pair.expires_in);
      done();
    } catch (error) {
      failed(error instanceof Problem && error.status === 401 ? new Error("That code is wrong or expired.") : error);
    }
  });
  codeForm.append(h("label", { for: "code" }, "Code"), code, h("button", { type: "submit", class: "primary" }, "Sign in"));
  fill(view, 
    h("h1", {}, "Sign in"),
    message ? alertBox(message) : null,
    h("p", {}, `Open the sign-in link you were sent, or get a code by email for ${app.programName}.`),
    emailForm, codeForm, note);
}
