/* version.h — rapport's release version, one place for rapportd and rapport.
 *
 * The git description of the build (RP_GIT_DESCRIBE) is generated apart,
 * into the build tree's rp_version.h (cmake/version.cmake), because only
 * the programs need it and it changes with every commit.
 */
#ifndef RP_VERSION_H
#define RP_VERSION_H

#define RP_VERSION "0.1.0"

#endif
