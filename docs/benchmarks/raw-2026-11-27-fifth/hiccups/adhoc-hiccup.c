/* Spins for N seconds reading CLOCK_MONOTONIC and counts the gaps between two reads: any gap
   is time this thread did not run although it never blocked (interrupts, preemption by the
   guest's scheduler or, at SCHED_FIFO, by the host). Prints the gaps' histogram. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static long long now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000LL + t.tv_nsec; }
int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 10;
    long long edges[] = {20000, 50000, 100000, 200000, 500000, 1000000, 2000000, 5000000, 10000000};
    long long count[10] = {0}, lost[10] = {0}, max = 0, start = now(), prev = start, end = start + (long long)(secs * 1e9);
    while (prev < end) {
        long long t = now(), g = t - prev;
        prev = t;
        if (g < edges[0]) continue;
        int i = 0; while (i < 8 && g >= edges[i + 1]) i++;  /* edges[i] <= g < edges[i+1]; 8: >= 10 ms */
        count[i]++; lost[i] += g;
        if (g > max) max = g;
    }
    long long total = 0; for (int i = 0; i < 10; i++) total += lost[i];
    printf("gaps >=20us: ");
    const char *names[] = {"20-50us", "50-100us", "0.1-0.2ms", "0.2-0.5ms", "0.5-1ms", "1-2ms", "2-5ms", "5-10ms", ">=10ms"};
    for (int i = 0; i < 9; i++) if (count[i]) printf("%s:%lld ", names[i], count[i]);
    printf("| lost %.2f%% of %.0fs, max %.2f ms\n", 100.0 * total / (prev - start), secs, max / 1e6);
    return 0;
}
