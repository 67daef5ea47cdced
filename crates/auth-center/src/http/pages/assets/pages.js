// The hosted pages' one script (auth-center http/pages). The pages work without it; it
// tells about the password policy while the new password is typed. The server decides.
"use strict";

(function () {
  var input = document.getElementById("new_password");
  var confirmation = document.getElementById("confirm_password");
  var feedback = document.getElementById("new-password-feedback");
  if (!input || !feedback) {
    return;
  }
  var min = parseInt(input.getAttribute("data-min"), 10);
  var max = parseInt(input.getAttribute("data-max"), 10);

  // Counted as the server counts: code points after NFKC normalisation.
  function length(text) {
    return Array.from(text.normalize("NFKC")).length;
  }

  function check() {
    var n = length(input.value);
    var problem = "";
    if (n > 0 && n < min) {
      problem = "Too short: " + n + " of at least " + min + " characters.";
    } else if (n > max) {
      problem = "Too long: at most " + max + " characters.";
    }
    input.setCustomValidity(problem);
    if (n === 0) {
      feedback.textContent = "";
    } else if (problem) {
      feedback.textContent = problem;
    } else {
      feedback.textContent = "Long enough. It must not be a common password either.";
    }
    if (confirmation) {
      var differs = confirmation.value !== "" && confirmation.value !== input.value;
      confirmation.setCustomValidity(differs ? "The two new passwords differ." : "");
    }
  }

  input.addEventListener("input", check);
  if (confirmation) {
    confirmation.addEventListener("input", check);
  }
})();
