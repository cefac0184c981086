#include "env.h"

int main(int argc, char** argv) { return ublkcheck::vm_main(argc, argv); }
