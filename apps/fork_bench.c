// fork+exit+wait of a process with N MiB touched (argv[1]): median and
// minimum of 7, in ms (docs/performance.md, issue 13).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  size_t mb=atoi(argv[1]); char*m=malloc(mb<<20); memset(m,1,mb<<20);
  double t[7];
  for(int i=0;i<7;i++){double t0=now(); pid_t p=fork(); if(p==0)_exit(m[i]); int st; waitpid(p,&st,0); t[i]=(now()-t0)*1e3;}
  qsort(t,7,sizeof t[0],cmp); printf("%zu MiB: fork+exit+wait median %.2f ms (min %.2f)\n",mb,t[3],t[0]);
}
