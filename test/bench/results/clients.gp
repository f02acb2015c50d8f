set terminal pngcairo size 1400,620 font "DejaVu Sans,12"
set output "/work/main/docs/benchmarks-clients.png"
set datafile missing "NaN"
set multiplot layout 1,2 title "realistic workload (find\\_dest, find\\_endp, new connection, save\\_dest, save\\_endp), same machine"
set logscale x 2
set xrange [0.8:80]
set xtics (1,2,4,8,16,32,64)
set grid
set key top left box opaque spacing 1.2
set xlabel "clients (one connection each)"
set ylabel "requests per second"
set format y "%.0fk"
set title "throughput (higher is better)"
set yrange [0:*]
set offsets 0, 0, graph 0.3, 0
plot "/work/main/test/bench/results/clients.dat" using 1:($4/1000) with linespoints lw 2 pt 6 lc rgb "#999999" dashtype 2 title "limit (no cache, same syscalls)", \
     "" using 1:($2/1000) with linespoints lw 3 pt 7 lc rgb "#1f77b4" title "scached", \
     "" using 1:($3/1000) with linespoints lw 3 pt 5 lc rgb "#d62728" title "Postfix scache"
set title "p99 latency (lower is better)"
set ylabel "p99 latency, ms"
set format y "%g"
set logscale y
set yrange [*:*]
set offsets 0, 0, 0, 0
set key bottom right
plot "/work/main/test/bench/results/clients.dat" using 1:7 with linespoints lw 2 pt 6 lc rgb "#999999" dashtype 2 title "limit", \
     "" using 1:5 with linespoints lw 3 pt 7 lc rgb "#1f77b4" title "scached", \
     "" using 1:6 with linespoints lw 3 pt 5 lc rgb "#d62728" title "Postfix scache"
unset multiplot
