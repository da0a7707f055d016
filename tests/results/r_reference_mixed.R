# Reference values for the REML trajectory fitter's edge cases (lmerTest Satterthwaite fits).
# Produces r_reference_mixed.json beside this file. R 4.2.2, lme4 1.1-31, lmerTest 3.1-3.
suppressMessages({library(lme4); library(lmerTest); library(jsonlite)})
out <- list(R_version = R.version.string,
            packages = list(lme4 = as.character(packageVersion("lme4")),
                            lmerTest = as.character(packageVersion("lmerTest"))))
fit_block <- function(m, call) {
  s <- summary(m)$coefficients  # lmerTest: Estimate, Std. Error, df, t value, Pr(>|t|)
  vc <- as.data.frame(VarCorr(m))
  list(call = call, terms = rownames(s), estimate = unname(s[, 1]), std_err = unname(s[, 2]),
       df = unname(s[, 3]), t_value = unname(s[, 4]), p_value = unname(s[, 5]),
       ci_low = unname(s[, 1] - qt(0.975, s[, 3]) * s[, 2]), ci_high = unname(s[, 1] + qt(0.975, s[, 3]) * s[, 2]),
       varcomp = list(name = paste(vc$var1, vc$var2, sep = ":"), vcov = vc$vcov),
       theta = unname(getME(m, "theta")),
       reml_loglik = as.numeric(logLik(m)), singular = isSingular(m))
}
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 2e-3, rhoend = 1e-12, maxfun = 1e5))
cohort <- function(n, arms, seed) {
  set.seed(seed)
  arm <- rep_len(arms, n)
  b0 <- rnorm(n, 0, 1.1); b1 <- rnorm(n, 0, 0.1)
  d <- expand.grid(t = 0:11, id = seq_len(n))
  d <- d[runif(nrow(d)) > 0.3, ]
  d$arm <- arm[d$id]
  d$pain <- 5 + 0.3 * (d$arm == arms[length(arms)]) + b0[d$id] + (-0.2 + b1[d$id]) * d$t + rnorm(nrow(d), 0, 0.7)
  d$participant <- sprintf("Q%03d", d$id)
  d
}
both <- function(d, formula_fixed, name) {
  d$arm <- factor(d$arm)
  f1 <- as.formula(paste(formula_fixed, "+ (t | participant)"))
  f0 <- as.formula(paste(formula_fixed, "+ (1 | participant)"))
  m1 <- lmer(f1, data = d, REML = TRUE, control = ctrl)
  m0 <- lmer(f0, data = d, REML = TRUE, control = ctrl)
  list(random_slope = fit_block(m1, paste0("lmerTest::lmer(", deparse(f1), ", ", name, ", REML = TRUE)")),
       random_intercept = fit_block(m0, paste0("lmerTest::lmer(", deparse(f0), ", ", name, ", REML = TRUE)")),
       data = list(participant = d$participant, arm = as.character(d$arm), t = d$t, pain = d$pain))
}

# 1. Participants with a single observation (10 of 40) and participants without variation in t
#    (5 of 40 observed twice in the same week).
d <- cohort(40, c("a", "b"), 11)
ids <- unique(d$participant)
single <- ids[1:10]
d <- d[!(d$participant %in% single) | !duplicated(d$participant), ]
same <- ids[11:15]
rep_rows <- d[d$participant %in% same & !duplicated(d$participant), ]
d <- d[!(d$participant %in% same), ]
rep2 <- rep_rows; rep2$pain <- rep2$pain + c(0.4, -0.3, 0.2, -0.5, 0.1)
d <- rbind(d, rep_rows, rep2)
out$single_observations <- both(d, "pain ~ t * arm", "single_observations")

# 2. A group with one participant (arm "c": one participant, all weeks).
d <- cohort(30, c("a", "b"), 12)
extra <- data.frame(t = 0:11, id = 99L, arm = "c")
extra$pain <- 6 - 0.3 * extra$t + c(0.3, -0.2, 0.1, 0.4, -0.6, 0.2, 0.0, -0.1, 0.5, -0.3, 0.2, -0.4)
extra$participant <- "Q099"
d <- rbind(d, extra[, names(d)])
out$one_participant_group <- both(d, "pain ~ t * arm", "one_participant_group")

# 3. A rank-deficient design: arm "c" has one participant observed once (week 4), so the
#    columns armc and t:armc are collinear; lme4 drops t:armc.
d <- cohort(30, c("a", "b"), 13)
d <- rbind(d, data.frame(t = 4L, id = 98L, arm = "c", pain = 4.2, participant = "Q098")[, names(d)])
out$rank_deficient <- both(d, "pain ~ t * arm", "rank_deficient")

writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"), "r_reference_mixed.json")
