const button = document.getElementById("action");
const status = document.getElementById("status");
let clicks = 0;
button.addEventListener("click", () => {
  clicks += 1;
  status.textContent = `Clicked ${clicks} time${clicks === 1 ? "" : "s"}.`;
});
