"""Window features: time encodings, lags, rolling means and seasonally normalised deviations (native Spark).

The seasonal profile holds, per key, the median of each signal per (weekday, half-hour slot) over the training
months and a robust scale per slot (1.4826 x MAD of the residuals, pooled over weekdays: three months give only
~13 values per weekday-slot, too few for a stable MAD). Deviations from it are robust z-scores, so a Monday-8am
count is judged against Monday-8am history.

The signals are chosen to be nearly independent: fare per mile rather than mean fare, speed rather than mean
duration, pay share rather than mean pay. With means, one noisy mean distance (a few long night trips) moved
four signals at once, and IsolationForest took that co-movement for an incident (measured: bucket precision
0.38 -> 0.83 on generated months).
"""

from __future__ import annotations

import math
from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

# Signal -> (expression on a window row, smallest scale allowed). Logs make ratios symmetric (x2 and /2 alike).
SIGNALS: dict[str, tuple[str, float]] = {
    "log_rate": ("log1p(rate)", 0.01),
    "log_fare_per_mile": ("ln(fare_mean / distance_mean)", 0.01),
    "log_distance": ("ln(distance_mean)", 0.01),
    "log_speed": ("ln(distance_mean / duration_mean)", 0.01),
    "pay_share": ("driver_pay_mean / fare_mean", 0.005),
    "airport_share": ("airport_share", 0.01),
}
MAD_TO_SIGMA = 1.4826
# Means of fewer trips than this are not judged (their z-scores are 0): at night and in small boroughs or zones
# a window of 1-9 trips has means that swing by several history scales by chance (measured at borough level:
# EWR, N/A and Unknown, 0-5 trips a window, took 183 of 332 flags; the count itself is still judged).
MIN_TRIPS_FOR_MEANS = 10

# What the IsolationForest sees: seasonally normalised deviations of the signals that carry incidents, plus
# their largest absolute value. IsolationForest picks split features at random, so an incident visible in one
# signal only is diluted by the others; z_max_abs concentrates it (measured on noise: single-signal outliers at 12 sd go
# from ~10 % to 100 % detected with 7 features). Time encodings, lags and the airport share stay in the feature
# table for analysis but would make rare slots, or the day after an incident, look anomalous.
DEVIATION_FEATURES = ("z_log_rate", "z_log_fare_per_mile", "z_log_distance", "z_log_speed", "z_pay_share")
MODEL_FEATURES = (*DEVIATION_FEATURES, "z_max_abs")


def _us_federal_holidays(years: set[int]) -> list[date]:
    """US federal holidays (observed dates) for the given years, without a calendar library."""

    def nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
        first = date(year, month, 1)
        return date(year, month, 1 + (weekday - first.weekday()) % 7 + 7 * (n - 1))

    def last_weekday(year: int, month: int, weekday: int) -> date:
        day = date(year, month + 1, 1) if month < 12 else date(year + 1, 1, 1)
        day = date.fromordinal(day.toordinal() - 1)
        return date.fromordinal(day.toordinal() - (day.weekday() - weekday) % 7)

    def observed(day: date) -> date:
        shift = {5: -1, 6: 1}.get(day.weekday(), 0)
        return date.fromordinal(day.toordinal() + shift)

    holidays = []
    for y in sorted(years):
        holidays += [
            observed(date(y, 1, 1)),
            nth_weekday(y, 1, 0, 3),
            nth_weekday(y, 2, 0, 3),
            last_weekday(y, 5, 0),
            observed(date(y, 6, 19)),
            observed(date(y, 7, 4)),
            nth_weekday(y, 9, 0, 1),
            nth_weekday(y, 10, 0, 2),
            observed(date(y, 11, 11)),
            nth_weekday(y, 11, 3, 4),
            observed(date(y, 12, 25)),
        ]
    return holidays


# The TLC record years, and some ahead: holidays are a literal list, so no pass over the data is needed.
HOLIDAY_YEARS = range(2009, 2041)


def add_time_features(windows: DataFrame) -> DataFrame:
    """hour, slot (0–47), weekday (Mon=0), their cyclic encodings and a US federal holiday flag."""
    holidays = _us_federal_holidays(set(HOLIDAY_YEARS))
    two_pi = 2 * math.pi
    hour = F.hour("bucket_start")
    slot = hour * 2 + (F.minute("bucket_start") >= 30).cast("int")
    weekday = (F.dayofweek("bucket_start") + 5) % 7
    return windows.withColumns(
        {
            "hour": hour,
            "slot": slot,
            "weekday": weekday,
            "slot_sin": F.sin(slot * two_pi / 48),
            "slot_cos": F.cos(slot * two_pi / 48),
            "weekday_sin": F.sin(weekday * two_pi / 7),
            "weekday_cos": F.cos(weekday * two_pi / 7),
            "is_holiday": F.to_date("bucket_start").isin(holidays),
        }
    )


def add_signals(windows: DataFrame) -> DataFrame:
    return windows.select("*", *[F.expr(expr).alias(f"s_{name}") for name, (expr, _) in SIGNALS.items()])


def seasonal_profile(training_windows: DataFrame) -> DataFrame:
    """Per (granularity, key, weekday, slot): the median of every signal, the robust scale of its slot (pooled
    over weekdays) and how many training windows the median rests on."""
    base = add_signals(add_time_features(training_windows))
    slot_group = ["granularity", "key", "weekday", "slot"]
    medians = base.groupBy(*slot_group).agg(
        *[F.percentile_approx(f"s_{n}", 0.5, 1000).alias(f"med_{n}") for n in SIGNALS],
        F.count(F.lit(1)).alias("history_windows"),
    )
    residuals = base.join(medians, slot_group).select(
        "granularity", "key", "slot", *[F.abs(F.col(f"s_{n}") - F.col(f"med_{n}")).alias(f"res_{n}") for n in SIGNALS]
    )
    scales = residuals.groupBy("granularity", "key", "slot").agg(
        *[(F.percentile_approx(f"res_{n}", 0.5, 1000) * MAD_TO_SIGMA).alias(f"scale_{n}") for n in SIGNALS]
    )
    return medians.join(scales, ["granularity", "key", "slot"])


def add_lags(windows: DataFrame) -> DataFrame:
    """Log-rate differences to the same slot one day and one week earlier, and to the previous 3 hours' mean.

    One window specification per key, ordered by the bucket's wall-clock second: a lag is the rate in a range frame
    of exactly that one earlier instant (null where the key had no window then), the rolling mean the 6 windows
    before. (Two self-joins of the window table did the lags before: 4.9 s of a month of zone windows.)"""
    wall_second = F.datediff(F.to_date("bucket_start"), F.lit("1970-01-01")).cast("long") * 86_400 + (
        F.hour("bucket_start") * 3_600 + F.minute("bucket_start") * 60
    )
    per_key = Window.partitionBy("granularity", "key").orderBy(wall_second)

    def earlier(seconds: int) -> Column:
        return F.max("rate").over(per_key.rangeBetween(-seconds, -seconds))

    rolling = F.avg("rate").over(per_key.rowsBetween(-6, -1))
    return windows.withColumns(
        {
            "rate_prev_day": earlier(86_400),
            "rate_prev_week": earlier(7 * 86_400),
            "rolling_rate_3h": rolling,
            "d_prev_day": F.log1p("rate") - F.log1p(earlier(86_400)),
            "d_prev_week": F.log1p("rate") - F.log1p(earlier(7 * 86_400)),
            "d_rolling_3h": F.log1p("rate") - F.log1p(rolling),
        }
    )


def build_features(windows: DataFrame, profile: DataFrame, with_lags: bool = True) -> DataFrame:
    """All features of the windows, with robust z-scores against the seasonal profile (0 where undefined, and
    for the means of windows with fewer than MIN_TRIPS_FOR_MEANS trips). with_lags=False leaves out the lag
    columns (they need the earlier windows, which a micro-batch of closed windows does not hold; they are not
    model inputs, so the scores are the same)."""
    base = add_signals(add_time_features(windows))
    if with_lags:
        base = add_lags(base)
    joined = base.join(F.broadcast(profile), ["granularity", "key", "weekday", "slot"], "left")
    z_scores = {}
    for name, (_, floor) in SIGNALS.items():
        scale = F.greatest(F.col(f"scale_{name}"), F.lit(floor))
        if name == "log_rate":
            # Counting noise: log1p of a Poisson count with mean m varies by about 1/sqrt(m + 1). Where few
            # trips are usual (EWR, N/A, small zones) the history's MAD can be 0, and 2 trips where 0 are usual
            # read as a 110-sd event (measured: 3 pseudo-boroughs took 442 of 467 borough flags).
            scale = F.greatest(scale, F.exp(-F.col("med_log_rate") / 2))
        z = (F.col(f"s_{name}") - F.col(f"med_{name}")) / scale
        if name != "log_rate":
            z = F.when(F.col("trips") >= MIN_TRIPS_FOR_MEANS, z)
        z_scores[f"z_{name}"] = F.coalesce(z, F.lit(0.0))
    lag_names = ("d_prev_day", "d_prev_week", "d_rolling_3h") if with_lags else ()
    lags = {name: F.coalesce(F.col(name), F.lit(0.0)) for name in lag_names}
    z_max_abs = F.greatest(*[F.abs(z_scores[c]) for c in DEVIATION_FEATURES])
    joined = joined.withColumns({**z_scores, **lags, "z_max_abs": z_max_abs})
    return joined.drop(*[c for c in joined.columns if c.startswith(("med_", "scale_", "s_"))])
