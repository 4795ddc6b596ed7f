"""Domain labels of the demo data: each source's subjects or datasets, the pool's domain mix, the target domains."""

from __future__ import annotations

TARGET_DOMAINS: dict[str, set[str]] = {
    "math": {"math"},
    "code": {"code"},
    "science": {"science"},
    "reasoning": {"reasoning"},
}
"""For each demo target, the pool ``domain`` values that count as a hit when measuring precision."""

DOMAIN_SHARES: dict[str, float] = {
    "math": 0.12, "code": 0.10, "science": 0.12, "reasoning": 0.10, "humanities": 0.13,
    "social": 0.13, "health": 0.08, "computing": 0.04, "general": 0.10, "language": 0.08,
}
"""Share of each domain in the demo pool; the four target domains are each a 10-12% minority."""

SOURCE_WEIGHTS = {"gsm_symbolic": 2, "codeio": 3}
"""Within a domain, sources take turns; these take that many turns per round (others one)."""

MMLU_TARGET_SUBJECTS = ("astronomy", "college biology", "college chemistry", "college physics")
"""MMLU science subjects held out for the ``science`` target: the pool and SAE corpus never use them."""

MMLU_DOMAINS: dict[str, str] = {
    **dict.fromkeys(MMLU_TARGET_SUBJECTS, "science"),
    **dict.fromkeys(("anatomy", "conceptual physics", "electrical engineering", "high school biology",
                     "high school chemistry", "high school physics", "medical genetics", "virology"), "science"),
    **dict.fromkeys(("abstract algebra", "college mathematics", "elementary mathematics",
                     "high school mathematics", "high school statistics"), "math"),
    **dict.fromkeys(("college computer science", "computer security", "high school computer science",
                     "machine learning"), "computing"),
    **dict.fromkeys(("clinical knowledge", "college medicine", "human aging", "nutrition", "professional medicine",
                     "human sexuality"), "health"),
    **dict.fromkeys(("formal logic", "high school european history", "high school us history",
                     "high school world history", "international law", "jurisprudence", "logical fallacies",
                     "moral disputes", "moral scenarios", "philosophy", "prehistory", "professional law",
                     "world religions"), "humanities"),
    **dict.fromkeys(("business ethics", "econometrics", "global facts", "high school geography",
                     "high school government and politics", "high school macroeconomics",
                     "high school microeconomics", "high school psychology", "management", "marketing",
                     "professional accounting", "professional psychology", "public relations", "security studies",
                     "sociology", "us foreign policy"), "social"),
    "miscellaneous": "general",
}

# English OpenAI-evals datasets used, by domain. Datasets with their own license in the wheel's LICENSE.md
# (text_compression, steganography, schelling_point, ballots, sandbagging, theory_of_mind, already_said_that)
# are never used.
EVALS_DOMAINS: dict[str, str] = {
    name: domain
    for domain, names in {
        "math": "algebra_word_problems aime_evaluation arithmetical_puzzles chinese-remainder-theorem determinant "
        "euler_problems geometry_puzzle isosceles-right-triangle jee-math linear-regression linear_equations "
        "math-derivatives math_for_5th-grader multi-step-equations multistep-word-problems "
        "probabilities-word-problems probability_questions simple_math solve-for-variable tricky-word-problems "
        "numbers_game matrix_mult_rows points_on_line finance finance_calc loss_logic missing_operators "
        "arithmetic-expression count_intersections_polynomial recurrence-relation",
        "code": "code_progress csharp-linq css-selectors infiniteloop-match python_list_comprehension regex-match "
        "sql syntax-check crontab json_patch_object reverse-shell singlestore-vectorsearch unified_patch "
        "formal-grammar-to-regex forth_stack_sim",
        "science": "balance_chemical_equation dna_melting_calculation ph_calculation mendelian_inheritance quartz "
        "smiles_to_formula resistor_ohm_calculator beam_analysis which_is_heavier mandaliof-table ab "
        "abstract2title map-electronic-component-part-to-fact",
        "reasoning": "logic logic-grid logic-riddles logic-statements logiqa logiqa-logical-reasoning-plus "
        "pararule-plus-multi-step-deductive-reasoning corr2cause crepe tracking-shuffled-objects track_objects "
        "2d_movement directions finger-tracking relative_orientations logical_counting number_series_test "
        "next-val-series logical_reasoning_letter_series_test escher_sentences premature-conclusions "
        "counterfactual-reasoning seating_arrangements ambiguous-sentences logic-container logic_and_probability "
        "internal_representations superficialpatterns irrelevant-negative-diversion dice-rotation-sequence "
        "passing-balls gears_rotation date-calculator day-of-week-from-date logic-liar-paradox "
        "reasoning_with_contradictory_statements path_enclosed_area building_floorplan",
        "humanities": "moral_exceptQA rhetorical_devices irony ordered-history-events us_tort_law "
        "greek_nt_manuscripts music-theory music_theory_scale_modes direct-speech-tag proofreader",
        "social": "utah_real_estate accounting_audit financial-derivatives stock_options taxes "
        "emotional-intelligence bias_detection soc_codes banking77 invoices",
        "health": "medmcqa nutrition medication_dose",
        "computing": "test_comp_sci cissp-study-questions cybersecurity naughty_strings security_guide "
        "automata-and-complexity context-free-grammar event_categories",
        "general": "born_first compare-countries-area largest_country shared_border countries "
        "categorize_with_distractors food coqa unsolvable_questions seo_keywords product-ie lat_long_identify "
        "cricket_situations nfl-point-combinations date-booking shopping_discount_comparison "
        "european_date_format_challenge list_comparison_missing_name research-question-extraction",
        "language": "anagrams rot13 first-letters reverse-sort-words-eng syllables_long_words "
        "partially_solved_crossword_clues word_association swap-words complex_replace_characters last_word_nth "
        "find-letter bigrams reverse_string vigenere decrypt_caesar_cipher base64_decode "
        "test_english_pronunciations unwanted-rhyming",
    }.items()
    for name in names.split()
}

