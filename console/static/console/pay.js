// The pay page: Stripe.js's card field, and the payment confirmed with the top-up's client
// secret (read from the page, never from a URL). Afterwards the top-up's status page, which
// says pending until Stripe's webhook has credited the budget.
const form = document.getElementById("pay-form");
const message = document.getElementById("pay-message");
const button = form.querySelector("button");
const stripe = Stripe(form.dataset.key);
const card = stripe.elements().create("card");
card.mount("#card-element");
button.disabled = false;

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  button.disabled = true;
  message.textContent = "Paying…";
  const result = await stripe.confirmCardPayment(form.dataset.secret, { payment_method: { card } });
  if (result.error) {
    message.textContent = result.error.message || "The payment did not go through; nothing was charged.";
    button.disabled = false;
    return;
  }
  message.textContent = "Paid. Opening the top-up's status…";
  window.location.assign(form.dataset.done);
});
