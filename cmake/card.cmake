# cmake/card.cmake — the agent's page's assets (src/net/card_assets/card.css),
# embedded in rapportd as a C array by rp_embed (cmake/embed.cmake; served
# at GET /card/card.css; the page itself is rendered by src/net/http_card.c);
# and, when node and chromium are there, the
# browser test tests/browser/card.mjs (playwright-core on Debian's chromium).
include(${CMAKE_SOURCE_DIR}/cmake/embed.cmake)
rp_embed(rp_net ${CMAKE_SOURCE_DIR}/src/net/card_assets/card.css rp_card_css)

# The browser test: node, Debian's chromium and tests/browser's packages
# (npm ci by tools/setup). Screenshots go to build/screenshots/.
find_program(RP_NODE NAMES node nodejs)
find_program(RP_CHROMIUM NAMES chromium)
if(RP_NODE AND RP_CHROMIUM AND EXISTS ${CMAKE_SOURCE_DIR}/tests/browser/node_modules/playwright-core)
  add_test(NAME card_browser
    COMMAND ${RP_NODE} ${CMAKE_SOURCE_DIR}/tests/browser/card.mjs $<TARGET_FILE:rapportd>
            ${CMAKE_BINARY_DIR}/screenshots)
  set_tests_properties(card_browser PROPERTIES TIMEOUT 180 ENVIRONMENT "RAPPORT_CHROMIUM=${RP_CHROMIUM}")
else()
  message(STATUS "card_browser test: not registered (needs node, chromium and tools/setup's npm ci)")
endif()
