/* Micro-benchmark of the pmem write log's cost (devices/pmem_log.h), no KVM needed: the fake
 * shadow table of the unit tests, a 64 MiB window, every page stored then written back in one
 * pcache_writeback_range (bulk pages/s), and 2000 FLUSHes of one dirty page each (us per
 * FLUSH), without and with the log. Not part of make bench (which measures a real guest,
 * with its "write_log on" rows): `make bench-log` (TMPDIR=/dev/shm by default: on tmpfs the
 * log's own cost shows best; TMPDIR=/var/tmp for a disk). */
#include <stdio.h>
#include <time.h>
#include "devices/pmem_log.h"
#include "tests/unit/test_pcache_env.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
int main(void)
{
	uint64_t size = 64*MIB, np = size/4096;
	const char *dir = getenv("TMPDIR")?getenv("TMPDIR"):"/tmp";
	for (int logged=0; logged<2; logged++){
		struct env e; memset(&e,0,sizeof e);
		if (env_open(&e,size,0,2*MIB,true)) return 1;
		struct pmem_log *pl=NULL; char err[256], logp[256];
		snprintf(logp,sizeof logp,"%s/plog-bench.log",dir);
		if (logged && pmem_log_attach(e.pc,e.path,logp,&pl,err,sizeof err)) {fprintf(stderr,"%s\n",err);return 1;}
		double best_bulk=1e9, best_one=1e9;
		for(int round=0;round<5;round++){
			for(uint64_t p=0;p<np;p++) env_store8(&e,p*4096,round*np+p+1);
			double t0=now(); pcache_writeback_range(e.pc,0,size); double t1=now();
			if(t1-t0<best_bulk) best_bulk=t1-t0;
			uint64_t cur=pcache_errseq_sample(e.pc);
			double ts=0; int N=2000;
			for(int i=0;i<N;i++){ env_store8(&e,(i%np)*4096+8,i); double a=now(); pcache_flush(e.pc,&cur); ts+=now()-a; }
			if(ts/N<best_one) best_one=ts/N;
		}
		printf("%s: bulk writeback %.0f pages/s (%.1f MiB/s); FLUSH of 1 dirty page %.1f us\n",
		       logged?"with pmem log":"no log      ", np/best_bulk, np*4096/best_bulk/MIB, best_one*1e6);
		if(pl) pmem_log_detach(pl);
		env_close(&e); unlink(logp); char b[300]; snprintf(b,sizeof b,"%s.base",logp); unlink(b);
	}
}
