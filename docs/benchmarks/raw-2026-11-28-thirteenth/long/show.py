import json,sys
for f in sys.argv[1:]:
    d=json.load(open(f)); m=d.get("machine_stalls") or {}
    print("%-22s p50 %6.0f p90 %6.0f p99 %6.0f p999 %6.0f max %6.0f lag99 %6.0f stalls %s slow %s/%s clean-p99 %s" % (d["label"], d["p50_us"], d["p90_us"], d["p99_us"], d["p999_us"], d["max_us"], d["send_lag_p99_us"], m.get("stalls"), m.get("slow_slices"), m.get("slow_slices_touched"), m.get("untouched_p99_us")))
