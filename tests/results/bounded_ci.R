# Reference values for the bounded confidence interval of a mean (rehabstats.tables.bounded_mean_ci).
# Produces bounded_ci.json beside this file:  Rscript bounded_ci.R
#
# A mean of a quantity bounded in [a, b] (adherence 0-1, NRS 0-10, VISA-A 0-100, a change in
# VISA-A -100..100) is rescaled to [0, 1] and given the logit-transformed interval of R
# survey::svyciprop(method = "logit") for a simple random sample (svydesign(ids = ~1): t with
# n - 1 degrees of freedom), then scaled back. "logit" fits svyglm(quasibinomial) by IRLS (its
# estimate agrees to about 1e-9); "xlogit" is the same interval by the delta method on svymean,
# without iteration (agrees to rounding).
suppressMessages({library(survey); library(jsonlite)})
case <- function(name, x, lower, upper, level = 0.95) {
  d <- data.frame(y = (x - lower) / (upper - lower))
  des <- suppressWarnings(svydesign(ids = ~1, data = d))  # equal probabilities, no fpc
  one <- function(method) {
    r <- svyciprop(~y, des, method = method, level = level)
    ci <- lower + (upper - lower) * as.numeric(attr(r, "ci"))
    list(mean = lower + (upper - lower) * as.numeric(r), ci_low = ci[1], ci_high = ci[2])
  }
  t_ci <- mean(x) + c(-1, 1) * qt(1 - (1 - level) / 2, length(x) - 1) * sd(x) / sqrt(length(x))
  list(name = name, x = x, lower = lower, upper = upper, level = level,
       logit = one("logit"), xlogit = one("xlogit"), t_interval = t_ci)
}
out <- list(
  R_version = R.version.string,
  packages = list(survey = as.character(packageVersion("survey"))),
  call = paste("svyciprop(~y, svydesign(ids = ~1, data = data.frame(y = (x - lower) / (upper - lower))),",
               "method = 'logit' or 'xlogit', level = level); limits scaled back to [lower, upper]"),
  cases = list(
    case("small site adherence", c(1, 1, 0.55), 0, 1),
    case("adherence, 12 participants",
         c(0.92, 0.85, 1, 0.64, 0.97, 0.88, 0.31, 1, 0.79, 0.95, 0.83, 0.58), 0, 1),
    case("binary outcome", c(1, 1, 1, 0, 1, 0, 1, 1, 1, 1), 0, 1),
    case("weekly morning pain, NRS", c(0, 0.5, 3, 0, 1), 0, 10),
    case("VISA-A, 90% level", c(95, 100, 88, 99), 0, 100, level = 0.90),
    case("VISA-A change", c(-5, 40, 62, 10, 3, 28), -100, 100),
    case("constant inside the bounds", c(0.5, 0.5, 0.5), 0, 1)
  )
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "bounded_ci.json")
