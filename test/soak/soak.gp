# test/soak/soak.gp — the plot of docs/soak.md, from soak.csv in the current
# directory. run.sh sets the terminal and the output file.
set datafile separator comma
set termoption noenhanced
set key below horizontal
set grid
set xlabel "time since the load started (s)"
set multiplot layout 3,1 title "scached soak: realistic load with expiry churn, sampled every 5 s"
set ylabel "descriptors"
set yrange [0:*]
plot "soak.csv" using 1:3 with linespoints pt 7 ps 0.5 title "descriptors (/proc/PID/fd)", \
     "" using 1:7 with lines dt 2 title "peak cached sessions of the interval"
set ylabel "RSS (MiB)"
plot "soak.csv" using 1:($4/1024) with linespoints pt 7 ps 0.5 title "VmRSS"
set ylabel "count"
set offsets 0, 0, 3, 0
# Threads first, wide, so that goroutines stay visible where they are equal.
plot "soak.csv" using 1:5 with lines lw 6 lc rgb "#a0d8c0" title "threads", \
     "" using 1:6 with linespoints pt 7 ps 0.5 lc rgb "#9400d3" title "goroutines (SCACHED_GOROUTINES)"
unset multiplot
