#include <stdio.h>
#include <time.h>
int main(){struct timespec r,a,b; clock_getres(CLOCK_REALTIME_COARSE,&r); printf("res %ld ns\n", r.tv_nsec);
long maxlag=0; for(int i=0;i<2000000;i++){clock_gettime(CLOCK_REALTIME,&a); clock_gettime(CLOCK_REALTIME_COARSE,&b); long lag=(a.tv_sec-b.tv_sec)*1000000000L+(a.tv_nsec-b.tv_nsec); if(lag>maxlag)maxlag=lag;} printf("max lag %ld ns\n",maxlag);
struct timespec s,e; clock_gettime(CLOCK_MONOTONIC,&s); for(int i=0;i<10000000;i++) clock_gettime(CLOCK_REALTIME,&a); clock_gettime(CLOCK_MONOTONIC,&e); printf("fine %.1f ns\n", ((e.tv_sec-s.tv_sec)*1e9+(e.tv_nsec-s.tv_nsec))/1e7);
clock_gettime(CLOCK_MONOTONIC,&s); for(int i=0;i<10000000;i++) clock_gettime(CLOCK_REALTIME_COARSE,&a); clock_gettime(CLOCK_MONOTONIC,&e); printf("coarse %.1f ns\n", ((e.tv_sec-s.tv_sec)*1e9+(e.tv_nsec-s.tv_nsec))/1e7);
}
