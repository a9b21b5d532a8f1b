/* The fault walk's workloads for the areas above the core (the walk
 * itself is in test_fault.c). */
#include "fault_walk.h"

const struct fault_workload fault_area_workloads[] = {
    {"none", NULL},
};
const unsigned fault_area_nworkloads = 0;
